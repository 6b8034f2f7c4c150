"""The variant registry: what each FFN variant is, as plain data (no torch), so the report can read it too.

A variant is (activation, kind) with kind one of
  plain   W_out · act(W_in x)                          ReLU, GELU, Swish, Sigmoid, ...
  gated   W_out · (act(W_gate x) ⊙ up_act(W_up x))     GLU, Bilinear, ReGLU, GEGLU, SwiGLU (up_act = identity),
                                                       GTU = tanh(xW) ⊙ σ(xV) (Dauphin et al. 2016)
  maxout  W_out · max_k(W_in,k x)                      Maxout with k pieces
(Shazeer 2020, "GLU Variants Improve Transformer", eqs. 1-6.) ffnlab.model.ffn builds the modules from these entries.

Adding a variant = one `VARIANTS` entry here + one `conf/ffn/<name>.yaml` holding `name: <name>`; every run records
its entry (`Variant.as_record`), and the report's families (gated vs ungated) come from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffnlab.config.errors import ConfigError

KINDS = ("plain", "gated", "maxout")


@dataclass(frozen=True)
class Variant:
    activation: str  # a key of ffnlab.model.ffn.ACTIVATIONS
    kind: str  # "plain" | "gated" | "maxout"
    up_activation: str = "identity"  # gated only: applied to the up (value) projection

    @property
    def gated(self) -> bool:
        return self.kind == "gated"

    def as_record(self) -> dict:
        """What a run record says of its variant (`ffn_variant`): the report reads the family from it."""
        return {"kind": self.kind, "gated": self.gated, "activation": self.activation,
                **({"up_activation": self.up_activation} if self.gated else {})}


# The single place a variant is defined. The first eight are the paper's Table 1.
VARIANTS: dict[str, Variant] = {
    "relu": Variant("relu", "plain"),
    "gelu": Variant("gelu", "plain"),
    "swish": Variant("swish", "plain"),
    "glu": Variant("sigmoid", "gated"),
    "bilinear": Variant("identity", "gated"),
    "reglu": Variant("relu", "gated"),
    "geglu": Variant("gelu", "gated"),
    "swiglu": Variant("swish", "gated"),
    "sigmoid": Variant("sigmoid", "plain"),
    "tanh": Variant("tanh", "plain"),
    "leaky_relu": Variant("leaky_relu", "plain"),
    "prelu": Variant("prelu", "plain"),
    "elu": Variant("elu", "plain"),
    "softplus": Variant("softplus", "plain"),
    "mish": Variant("mish", "plain"),
    "relu2": Variant("relu2", "plain"),
    "gtu": Variant("tanh", "gated", up_activation="sigmoid"),
    "maxout": Variant("identity", "maxout"),
}
PAPER_VARIANTS = ("relu", "gelu", "swish", "glu", "bilinear", "reglu", "geglu", "swiglu")


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown ffn {name!r}; valid variants: {', '.join(sorted(VARIANTS))}")
    return VARIANTS[name]
