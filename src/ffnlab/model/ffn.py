"""FFN variants as modules: the activations, the FeedForward module and the hidden-size solver.

What each variant is (activation, kind: plain | gated | maxout) is plain data in ffnlab.model.variants, the one registry
(re-exported here); this module builds it. No biases, as in the paper's T5 setting (Shazeer 2020, eqs. 1-6).
Weight names (`w_in`, `w_out`) are the same for every variant, so init, decay rules and checkpoints
treat all variants alike; gated variants fuse gate and up projections into one `w_in` matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ffnlab.config.errors import ConfigError  # noqa: F401  (re-exported: ffnlab.model.ffn.ConfigError)
from ffnlab.model.variants import PAPER_VARIANTS, VARIANTS, Variant, get_variant  # noqa: F401  (re-exported)


@dataclass
class FFNConfig:
    """The `ffn` config group: keys map 1:1 onto these fields (see conf/ffn/*.yaml)."""

    name: str  # a key of VARIANTS
    match: str = "params"  # "params": solve the width from the budget; "none": width = budget_mult·d_model
    budget_mult: float = 4.0  # budget = a 2-matrix FFN of width budget_mult·d_model (T5/GPT: 4)
    multiple_of: int = 8  # the solved width is rounded to the nearest multiple of this
    pieces: int = 2  # maxout k
    gelu_approximate: str = "none"  # GELU form: "none" (exact erf) | "tanh" | "sigmoid" (x·σ(1.702x))
    swish_beta: float = 1.0  # Swish x·σ(βx); β=1 is SiLU
    swish_beta_trainable: bool = False
    leaky_relu_slope: float = 0.01
    prelu_init: float = 0.25  # He et al. 2015's initial slope
    elu_alpha: float = 1.0

    def __post_init__(self):
        """Every key is checked whatever the variant: a bad value for an option this variant does not read is still
        a mistake in the command (and would be taken up by the next variant of a sweep)."""
        get_variant(self.name)
        checks = {
            "match": (self.match in ("params", "none"), "params or none"),
            "budget_mult": (_finite(self.budget_mult) and self.budget_mult > 0, "a finite number > 0"),
            "multiple_of": (self.multiple_of >= 1, "an integer >= 1"),
            "pieces": (self.pieces >= 2, "an integer >= 2 (maxout's pieces)"),
            "gelu_approximate": (self.gelu_approximate in GELU_FORMS, f"one of {', '.join(GELU_FORMS)}"),
            **{key: (_finite(getattr(self, key)), "a finite number")
               for key in ("swish_beta", "leaky_relu_slope", "prelu_init", "elu_alpha")},
        }
        for key, (ok, accepted) in checks.items():
            if not ok:
                raise ConfigError(f"ffn.{key}={getattr(self, key)!r} is not accepted; give {accepted}")


GELU_FORMS = ("none", "tanh", "sigmoid")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# --------------------------------------------------------------------------- activations
class GELUSigmoid(nn.Module):
    """GELU's sigmoid approximation x·σ(1.702x) (Hendrycks & Gimpel 2016, sec. 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Swish(nn.Module):
    """x·σ(βx) (Ramachandran et al. 2017); β may be trained (then it is exempt from weight decay)."""

    def __init__(self, beta: float, trainable: bool):
        super().__init__()
        if trainable:
            self.beta = nn.Parameter(torch.tensor(float(beta)))
        else:
            self.register_buffer("beta", torch.tensor(float(beta)), persistent=False)
        self.is_silu = beta == 1.0 and not trainable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_silu:  # the fused kernel, same values
            return F.silu(x)
        return x * torch.sigmoid(self.beta * x)


class SquaredReLU(nn.Module):
    """relu(x)² (So et al. 2021, "Primer")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(F.relu(x))


def _gelu(cfg: FFNConfig) -> nn.Module:
    if cfg.gelu_approximate == "sigmoid":
        return GELUSigmoid()
    return nn.GELU(approximate=cfg.gelu_approximate)  # none | tanh (FFNConfig checks it)


@dataclass(frozen=True)
class Activation:
    build: Callable[[FFNConfig], nn.Module]
    options: tuple[str, ...] = ()  # the FFNConfig fields `build` reads: they change the function, so the label


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(lambda cfg: nn.ReLU()),
    "gelu": Activation(_gelu, ("gelu_approximate",)),
    "swish": Activation(
        lambda cfg: Swish(cfg.swish_beta, cfg.swish_beta_trainable), ("swish_beta", "swish_beta_trainable")
    ),
    "sigmoid": Activation(lambda cfg: nn.Sigmoid()),
    "tanh": Activation(lambda cfg: nn.Tanh()),
    "identity": Activation(lambda cfg: nn.Identity()),
    "leaky_relu": Activation(lambda cfg: nn.LeakyReLU(cfg.leaky_relu_slope), ("leaky_relu_slope",)),
    "prelu": Activation(lambda cfg: nn.PReLU(num_parameters=1, init=cfg.prelu_init), ("prelu_init",)),
    "elu": Activation(lambda cfg: nn.ELU(cfg.elu_alpha), ("elu_alpha",)),
    "softplus": Activation(lambda cfg: nn.Softplus()),
    "mish": Activation(lambda cfg: nn.Mish()),
    "relu2": Activation(lambda cfg: SquaredReLU()),
}


def variant_options(variant: Variant) -> tuple[str, ...]:
    """The FFNConfig fields a variant reads, besides the width settings (match, budget_mult, multiple_of, which
    belong to the comparison setting): its activations' options, and `pieces` for maxout."""
    activations = (variant.activation, variant.up_activation) if variant.gated else (variant.activation,)
    declared = [o for a in activations if a in ACTIVATIONS for o in ACTIVATIONS[a].options]
    return tuple(dict.fromkeys(declared + (["pieces"] if variant.kind == "maxout" else [])))


def _option_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def variant_label(cfg: FFNConfig) -> str:
    """The variant as the report names it: its name, plus every option it reads that is not at its default,
    e.g. `gelu[gelu_approximate=tanh]` or `maxout[pieces=4]`. Options a variant does not read leave it alone
    (`ffn=relu ffn.pieces=4` is `relu`), so runs of one function are pooled and runs of two are not."""
    defaults = FFNConfig(name=cfg.name)
    changed = [
        f"{option}={_option_text(getattr(cfg, option))}"
        for option in variant_options(get_variant(cfg.name))
        if getattr(cfg, option) != getattr(defaults, option)
    ]
    return f"{cfg.name}[{','.join(changed)}]" if changed else cfg.name


# --------------------------------------------------------------------------- hidden-size solver
def n_input_matrices(cfg: FFNConfig) -> int:
    """How many d×h matrices feed the hidden layer: 1 plain, 2 gated (gate, up), k maxout."""
    kind = get_variant(cfg.name).kind
    if kind == "maxout":
        return cfg.pieces
    return 2 if kind == "gated" else 1


def solve_ffn_hidden(cfg: FFNConfig, d_model: int) -> int:
    """The FFN width that gives this variant the same parameters as the budget FFN.

    Budget: a 2-matrix FFN of width budget_mult·d_model, i.e. 2·d·(budget_mult·d) weights per layer.
    A variant with m = n_input_matrices + 1 matrices gets h = budget / (m·d), rounded to the nearest
    multiple_of: plain 2·d·h, gated 3·d·h (d=768: 3072 -> 2048, the paper's setting), maxout (k+1)·d·h.
    `match: none` keeps the budget width for every variant (equal width, unequal parameters).
    """
    budget_width = cfg.budget_mult * d_model
    if cfg.match == "none":
        exact = budget_width
    else:
        n_matrices = n_input_matrices(cfg) + 1
        exact = 2 * budget_width / n_matrices
    return max(cfg.multiple_of, int(round(exact / cfg.multiple_of)) * cfg.multiple_of)


# --------------------------------------------------------------------------- module
class FeedForward(nn.Module):
    def __init__(self, cfg: FFNConfig, d_model: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = dropout  # on the hidden layer, as T5's DenseReluDense (fine-tuning: model.dropout)
        variant = get_variant(cfg.name)
        for act in (variant.activation, variant.up_activation):
            if act not in ACTIVATIONS:
                raise ConfigError(f"variant {cfg.name!r} names unknown activation {act!r}")
        self.kind = variant.kind
        self.hidden = hidden
        self.n_in = n_input_matrices(cfg)
        self.w_in = nn.Linear(d_model, self.n_in * hidden, bias=False)
        self.act = ACTIVATIONS[variant.activation].build(cfg)
        self.up_act = ACTIVATIONS[variant.up_activation].build(cfg) if self.kind == "gated" else None
        self.w_out = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w_in(x)
        if self.kind == "gated":
            gate, up = h.chunk(2, dim=-1)  # gate = first half of w_in's rows, up = second half
            h = self.act(gate) * self.up_act(up)
        elif self.kind == "maxout":
            h = h.unflatten(-1, (self.n_in, self.hidden)).amax(dim=-2)
        else:
            h = self.act(h)
        if self.dropout and self.training:
            h = F.dropout(h, self.dropout, training=True)
        return self.w_out(h)

