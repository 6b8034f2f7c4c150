"""Prepare a corpus's token store ahead of training, e.g. on a login node that can reach the hub:

    python scripts/prepare_data.py data=parquet_fixture              # any Hydra overrides of conf/train.yaml
    python scripts/prepare_data.py data=wikitext103 data.num_proc=8 data.verify_cache=true

Training then finds the prepared entry (same data, same tokenizer settings) and runs offline. An interrupted
preparation resumes from the shards it finished when run again.
"""

import logging
import sys


from ffnlab.config.compose import compose_config
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from ffnlab.config.errors import ConfigError, one_line
from ffnlab.training.run import instantiate_data
from ffnlab.config.validate import validate


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = compose_config(argv)
        validate(cfg)
        datamodule = instantiate_data(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
    except (ConfigError, HydraException, OmegaConfBaseException) as error:  # one line, as train.py says it
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{split} {n:,}" for split, n in datamodule.tokens_per_split.items())
    print(f"{datamodule.cache_path}: {sizes} tokens, vocab {datamodule.vocab_size}, data_hash {datamodule.data_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
