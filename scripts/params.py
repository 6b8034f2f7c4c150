"""Parameter counts and training FLOPs/token of every FFN variant, without training.

    python scripts/params.py [hydra overrides, e.g. model=base]   # a table
    python scripts/params.py model.d_model=512 --json             # a list of objects
"""

import argparse
import json
import sys

from ffnlab.compose import compose_config
from ffnlab.config import to_dataclass
from ffnlab.errors import ConfigError
from ffnlab.ffn import VARIANTS, FFNConfig
from ffnlab.model import ModelConfig
from ffnlab.sizes import STAT_KEYS, model_stats
from omegaconf import OmegaConf


def vocab_size_of(cfg) -> int:
    """model.vocab_size, else the tokenizer's: BPE's target size, or the char vocab read from the data."""
    if cfg.model.vocab_size is not None:
        return cfg.model.vocab_size
    if cfg.data.tokenizer == "bpe":
        return cfg.data.vocab_size
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.vocab_size


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (the ffn choice is ignored: all variants)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    args = parser.parse_args(argv)
    try:
        rows = []
        for name in VARIANTS:
            cfg = compose_config([*args.overrides, f"ffn={name}"])
            fields = OmegaConf.to_container(cfg.model, resolve=True) | {"vocab_size": vocab_size_of(cfg)}
            stats = model_stats(ModelConfig(**fields), to_dataclass(FFNConfig, cfg.ffn))
            rows.append({"ffn": name, **stats})
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ffn':<12}" + "".join(f"{k:>22}" for k in STAT_KEYS))
    for row in rows:
        print(f"{row['ffn']:<12}" + "".join(f"{row[k]:>22,}" for k in STAT_KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
