"""Compose conf/train.yaml in-process (scripts and tests), the way `python train.py` would."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ffnlab.config import schemas as config


def compose_config(overrides: list[str] | tuple[str, ...] = (), with_hydra: bool = False) -> DictConfig:
    """The resolved-on-access config for these Hydra overrides (no Hydra run directory is made); `with_hydra`
    keeps the `hydra` node (a study's sweep parameters)."""
    config.register()
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=with_hydra)


def vocab_size_of(cfg: DictConfig) -> int:
    """model.vocab_size, else the tokenizer's: BPE's target size, or the char vocab read from the data."""
    if cfg.model.vocab_size is not None:
        return cfg.model.vocab_size
    if cfg.get("finetune") is not None:  # the pre-training run's tokenizer: its record says the size
        return finetune_vocab_size(cfg)
    if cfg.data.tokenizer == "bpe":
        return cfg.data.vocab_size
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.vocab_size


def finetune_vocab_size(cfg: DictConfig) -> int:
    from ffnlab.downstream.finetune import init_run
    from ffnlab.config.errors import ConfigError

    try:
        return int(init_run(cfg).record["setting"]["model.vocab_size"])
    except ConfigError as error:
        raise ConfigError(f"a fine-tune's vocabulary is the one of the run it starts from, read from its record: "
                          f"{error}; or give it as model.vocab_size=N (glu_variants: 32768)") from None


def model_config(cfg: DictConfig):
    """The run's ModelConfig, its vocabulary resolved without training (scripts: params.py, benchmark.py)."""
    from ffnlab.model.decoder import ModelConfig

    return config.to_dataclass(ModelConfig, cfg.model, vocab_size=vocab_size_of(cfg))


def sweep_points(overrides: list[str] | tuple[str, ...] = ()) -> list[list[str]]:
    """The override lists of every point a `python train.py -m <overrides>` sweep would run (the experiment's
    `hydra.sweeper.params` and comma lists on the command line), in Hydra's order."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_config([o for o in overrides if "," not in o.partition("=")[2]], with_hydra=True)
    params = {key: str(value) for key, value in (cfg.hydra.sweeper.params or {}).items()}
    params |= {o.partition("=")[0]: o.partition("=")[2] for o in overrides if "," in o.partition("=")[2]}
    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    axes = [[f"{o.key_or_group}={v}" for v in (o.sweep_string_iterator() if o.is_sweep_override() else
                                                [o.get_value_element_as_str()])] for o in parsed]
    fixed = [o for o in overrides if "," not in o.partition("=")[2]]
    return [[*fixed, *point] for point in itertools.product(*axes)] if axes else [list(fixed)]
