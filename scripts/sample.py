"""Generate text from a trained run.

    python scripts/sample.py outputs/default/default/checkpoints/last.ckpt --prompt "ROMEO:"
"""

import argparse
import sys

from ffnlab.sampling import generate, load_checkpoint


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="a run's checkpoints/last.ckpt")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--tokens", type=int, default=200, help="new tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model, tokenizer = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    new_ids = generate(model, tokenizer.encode(args.prompt), args.tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + tokenizer.decode(new_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
