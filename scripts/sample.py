"""Generate text from a trained run.

    python scripts/sample.py outputs/default/default/checkpoints/last.ckpt --prompt "ROMEO:"
"""

import argparse
import sys

from ffnlab.generate import generate, load_checkpoint, unknown_characters


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="a run's checkpoints/last.ckpt")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--tokens", type=int, default=200, help="new tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    bad = [message for wrong, message in (
        (args.tokens < 0, f"--tokens={args.tokens}: give a number of new tokens >= 0"),
        (args.temperature < 0, f"--temperature={args.temperature}: give a temperature >= 0 (0 = greedy)"),
        (args.top_k is not None and args.top_k < 1, f"--top-k={args.top_k}: give k >= 1 (the k likeliest tokens)"),
    ) if wrong]
    if bad:
        print(f"error: {bad[0]}", file=sys.stderr)
        return 2
    try:
        model, tokenizer = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    unknown = unknown_characters(tokenizer, args.prompt)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5])
        print(f"warning: {len(unknown)} prompt character(s) are not in the vocabulary ({shown}"
              f"{' ...' if len(unknown) > 5 else ''}); they become [UNK]", file=sys.stderr)
    new_ids = generate(model, tokenizer.encode(args.prompt), args.tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + tokenizer.decode(new_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
