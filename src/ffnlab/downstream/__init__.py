"""The downstream half of the paper (issue 24).

- Fine-tuning (the paper's Tables 2-4), part of training and free of lm-eval: `text_tasks` (GLUE, SuperGLUE, SQuAD
  and the embedded speaker task in T5's text-to-text formats, with their metrics), `mixture` (the examples as a
  decoder-only LM reads them), `finetune` (the stage: the run it starts from, greedy decoding, the record).
- Zero-shot scoring by lm-evaluation-harness (`harness`, tasks in `tasks/`) and HF export need the `eval` extra;
  training processes never import them.
"""
