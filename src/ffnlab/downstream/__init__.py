"""The downstream half of the paper (issue 24): checkpoints scored by lm-evaluation-harness (`harness`), on the
hub's tasks or on the ones defined here (`tasks/`). Needs the `eval` extra; training processes never import it."""
