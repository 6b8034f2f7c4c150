"""Export a finished run as a Hugging Face model: a stock LlamaForCausalLM and its tokenizer.

    python scripts/export_hf.py outputs/default/default hf/swiglu
    python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('hf/swiglu')"

Writes config.json, model.safetensors, generation_config.json, tokenizer.json and tokenizer_config.json into OUT_DIR
(a new or empty directory; written whole or not at all). Exports the variants Llama's MLP, down(act(gate(x)) * up(x)),
expresses: swiglu, geglu, reglu, glu, bilinear (ffnlab.downstream.export); the exported model's logits are checked against
ffnlab's, and its tokenizer's ids and text, before anything is written. Needs transformers (the `eval` extra).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ffnlab.generate import load_checkpoint


def run_status(run_dir: Path) -> str | None:
    """metrics.json's status, or None when there is none to read."""
    try:
        record = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return record.get("status") if isinstance(record, dict) else None


def check_paths(run_dir: Path, out_dir: Path, allow_unfinished: bool) -> str | None:
    """What is wrong with the command's paths (one line), or None."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not run_dir.is_dir():
        return f"{run_dir} is not a directory; give a run directory (it holds checkpoints/last.ckpt)"
    if not checkpoint.is_file():
        return f"no checkpoint at {checkpoint}: {run_dir} is not a run directory, or its run saved none yet"
    status = run_status(run_dir)
    if status != "finished" and not allow_unfinished:
        said = f"its metrics.json says status={status}" if status else "it has no readable metrics.json"
        return (f"{run_dir} is not a finished run ({said}); --allow-unfinished exports its last.ckpt anyway")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        return f"{out_dir} exists and is not an empty directory; give a new or empty OUT_DIR"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (holding checkpoints/last.ckpt, metrics.json)")
    parser.add_argument("out_dir", type=Path, help="where to write the Hugging Face model (new or empty)")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="export the last checkpoint of a run that has not finished (running, interrupted ...)")
    args = parser.parse_args(argv)
    problem = check_paths(args.run_dir, args.out_dir, args.allow_unfinished)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("error: transformers is not installed; pip install -e '.[eval]' (make test-eval builds .venv-eval)",
              file=sys.stderr)
        return 1
    from transformers.utils import logging as transformers_logging

    from ffnlab.downstream.export import ExportError, check_exportable, export

    transformers_logging.disable_progress_bar()  # "Writing model shards": the summary line says what was written

    try:
        model, tokenizer = load_checkpoint(args.run_dir / "checkpoints" / "last.ckpt")
        check_exportable(model)  # before any file is made
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out_dir = args.out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's is 0700: OUT_DIR gets a new directory's usual mode
    try:
        summary = export(model, tokenizer, staging)
        for path in staging.iterdir():  # some are written through a private temporary file (0600)
            path.chmod(0o666 & ~umask)
        if out_dir.exists():  # an empty directory (checked above): the staged one takes its place
            out_dir.rmdir()
        os.rename(staging, out_dir)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"exported ffn={summary['ffn']} as LlamaForCausalLM (hidden_act={summary['hidden_act']}, "
          f"{summary['parameters']:,} parameters, logits within {summary['max_logit_difference']:.1e} of ffnlab's; "
          f"{summary['tokenizer']} tokenizer, {summary['vocab_size']} tokens) to {args.out_dir}: "
          f"{', '.join(summary['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
