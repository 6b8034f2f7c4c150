"""The FFN registry against formulas written out here, independently of torch.nn's activations.

Every reference below is the paper's (or the activation's own paper's) formula in elementary ops, so a
registry entry pointing at the wrong function, a swapped gate/up split or a wrong maxout layout fails.
Computed in float64 so the tolerance can be tight enough to tell GELU's three forms apart.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import ACTIVATIONS, PAPER_VARIANTS, VARIANTS, FeedForward, FFNConfig

CONF_FFN = Path(__file__).parents[1] / "conf" / "ffn"
TOL = 1e-10
X = torch.cat([torch.linspace(-6.0, 6.0, 241, dtype=torch.float64), torch.tensor([0.0, 1e-3, -1e-3, 0.5])])


# --------------------------------------------------------------------------- reference formulas
def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def gelu_exact(x):  # x·Φ(x)
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):  # Hendrycks & Gimpel 2016, eq. in sec. 2
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_sigmoid(x):
    return x * sigmoid(1.702 * x)


def swish(beta):
    return lambda x: x * sigmoid(beta * x)


def tanh(x):
    return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))


def relu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


def leaky(slope):
    return lambda x: torch.where(x > 0, x, slope * x)


def elu(alpha):
    return lambda x: torch.where(x > 0, x, alpha * (torch.exp(x) - 1.0))


def softplus(x):
    return torch.log(1.0 + torch.exp(x))


def mish(x):
    return x * tanh(softplus(x))


def relu_squared(x):
    return torch.where(x > 0, x * x, torch.zeros_like(x))


def identity(x):
    return x


# (activation key, config overrides, reference): every option the registry exposes, non-default values too.
# β and slopes are exact in float32 (parameters are made in float32, then cast to float64).
ACTIVATION_CASES = [
    ("relu", {}, relu),
    ("gelu", {}, gelu_exact),
    ("gelu", {"gelu_approximate": "none"}, gelu_exact),
    ("gelu", {"gelu_approximate": "tanh"}, gelu_tanh),
    ("gelu", {"gelu_approximate": "sigmoid"}, gelu_sigmoid),
    ("swish", {}, swish(1.0)),
    ("swish", {"swish_beta": 1.75}, swish(1.75)),
    ("swish", {"swish_beta": 0.5, "swish_beta_trainable": True}, swish(0.5)),
    ("sigmoid", {}, sigmoid),
    ("tanh", {}, tanh),
    ("identity", {}, identity),
    ("leaky_relu", {}, leaky(0.01)),
    ("leaky_relu", {"leaky_relu_slope": 0.2}, leaky(0.2)),
    ("prelu", {}, leaky(0.25)),  # He et al. 2015 init
    ("prelu", {"prelu_init": 0.125}, leaky(0.125)),
    ("elu", {}, elu(1.0)),
    ("elu", {"elu_alpha": 0.5}, elu(0.5)),
    ("softplus", {}, softplus),
    ("mish", {}, mish),
    ("relu2", {}, relu_squared),
]

# variant -> (activation reference, up reference) with every option at its default
VARIANT_REFERENCES = {
    "relu": (relu, None),
    "gelu": (gelu_exact, None),
    "swish": (swish(1.0), None),
    "glu": (sigmoid, identity),
    "bilinear": (identity, identity),
    "reglu": (relu, identity),
    "geglu": (gelu_exact, identity),
    "swiglu": (swish(1.0), identity),
    "sigmoid": (sigmoid, None),
    "tanh": (tanh, None),
    "leaky_relu": (leaky(0.01), None),
    "prelu": (leaky(0.25), None),
    "elu": (elu(1.0), None),
    "softplus": (softplus, None),
    "mish": (mish, None),
    "relu2": (relu_squared, None),
    "gtu": (tanh, sigmoid),
    "maxout": (None, None),
}
GATED = [name for name, v in VARIANTS.items() if v.kind == "gated"]


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- activations
@pytest.mark.parametrize(
    "key,overrides,reference", ACTIVATION_CASES, ids=[f"{k}{o or ''}" for k, o, _ in ACTIVATION_CASES]
)
def test_activation_matches_its_formula(key, overrides, reference):
    act = ACTIVATIONS[key].build(FFNConfig(name="relu", **overrides)).double()
    with torch.no_grad():
        assert max_diff(act(X), reference(X)) < TOL


def test_reference_forms_are_far_enough_apart_to_be_told_apart():
    """A `gelu` that computed SiLU, or the wrong GELU approximation, would fail the test above."""
    forms = {
        "gelu_exact": gelu_exact(X),
        "gelu_tanh": gelu_tanh(X),
        "gelu_sigmoid": gelu_sigmoid(X),
        "silu": swish(1.0)(X),
        "swish_1.75": swish(1.75)(X),
        "elu": elu(1.0)(X),
        "elu_0.5": elu(0.5)(X),
        "leaky_0.01": leaky(0.01)(X),
        "leaky_0.2": leaky(0.2)(X),
        "mish": mish(X),
    }
    names = list(forms)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert max_diff(forms[a], forms[b]) > 1000 * TOL, (a, b)
    gelu = ACTIVATIONS["gelu"].build(FFNConfig(name="gelu")).double()
    with torch.no_grad():
        assert max_diff(gelu(X), swish(1.0)(X)) > 0.1  # GELU and SiLU differ by ~0.2 near x = -2


def test_prelu_slope_starts_at_init_and_is_trained():
    act = ACTIVATIONS["prelu"].build(FFNConfig(name="prelu"))
    (slope,) = act.parameters()
    assert slope.numel() == 1 and slope.item() == pytest.approx(0.25)
    act(torch.tensor([-1.0, 2.0])).sum().backward()
    assert slope.grad.item() == pytest.approx(-1.0)  # d/da of a·x at x=-1


def test_swish_beta_is_a_parameter_only_when_trainable():
    fixed = ACTIVATIONS["swish"].build(FFNConfig(name="swish", swish_beta=1.7))
    assert list(fixed.parameters()) == []
    trained = ACTIVATIONS["swish"].build(FFNConfig(name="swish", swish_beta=1.7, swish_beta_trainable=True))
    (beta,) = trained.parameters()
    assert beta.item() == pytest.approx(1.7)
    x = torch.tensor([0.5, -1.0])
    trained(x).sum().backward()
    s = sigmoid(beta.detach() * x)  # d/dβ x·σ(βx) = x²·σ(βx)(1-σ(βx))
    assert beta.grad.item() == pytest.approx((x * x * s * (1 - s)).sum().item(), rel=1e-5)


# --------------------------------------------------------------------------- FeedForward against a reference
D, H = 12, 20


def build_ffn(name: str, **overrides) -> FeedForward:
    torch.manual_seed(0)
    ffn = FeedForward(FFNConfig(name=name, **overrides), d_model=D, hidden=H).double()
    for p in ffn.parameters():
        if p.ndim == 2:  # nn.Linear's default init is small; unit-scale weights exercise the nonlinearities
            torch.nn.init.normal_(p, std=1.0 / math.sqrt(p.shape[1]))
    return ffn


def reference_ffn(ffn: FeedForward, name: str, x: torch.Tensor, pieces: int = 2, swap: bool = False) -> torch.Tensor:
    """The variant's equation, written from the module's own weights: y = act(...) W_outᵀ."""
    w_in, w_out = ffn.w_in.weight.detach(), ffn.w_out.weight.detach()
    kind = VARIANTS[name].kind
    if kind == "maxout":  # piece j owns rows [j·H, (j+1)·H) of w_in
        pieces_out = [x @ w_in[j * H : (j + 1) * H].T for j in range(pieces)]
        hidden = pieces_out[0]
        for piece in pieces_out[1:]:
            hidden = torch.maximum(hidden, piece)
    elif kind == "gated":  # gate = first H rows, up (value) = second H rows
        act, up_act = VARIANT_REFERENCES[name]
        w_gate, w_up = w_in[:H], w_in[H:]
        if swap:
            w_gate, w_up = w_up, w_gate
        hidden = act(x @ w_gate.T) * up_act(x @ w_up.T)
    else:
        act, _ = VARIANT_REFERENCES[name]
        hidden = act(x @ w_in.T)
    return hidden @ w_out.T


def test_every_variant_has_a_reference_here():
    assert set(VARIANT_REFERENCES) == set(VARIANTS)
    assert set(PAPER_VARIANTS) <= set(VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_ffn_forward_matches_reference(name):
    ffn = build_ffn(name)
    x = torch.randn(2, 5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert max_diff(ffn(x), reference_ffn(ffn, name, x)) < TOL


@pytest.mark.parametrize("name", [n for n in GATED if n != "bilinear"])  # bilinear is symmetric in gate/up
def test_gated_split_is_gate_first_then_up(name):
    ffn = build_ffn(name)
    x = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = ffn(x)
        assert max_diff(out, reference_ffn(ffn, name, x)) < TOL
        assert max_diff(out, reference_ffn(ffn, name, x, swap=True)) > 1e-3


def test_bilinear_has_no_nonlinearity():
    """W_out(xW ⊙ xV) is homogeneous of degree 2 in x: f(a·x) = a²·f(x) for every a, negative too."""
    ffn = build_ffn("bilinear")
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for scale in (-3.0, 0.5, 2.0):
            assert max_diff(ffn(scale * x), scale**2 * ffn(x)) < TOL


@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_maxout_takes_the_max_over_contiguous_row_blocks(pieces):
    ffn = build_ffn("maxout", pieces=pieces)
    assert ffn.w_in.weight.shape == (pieces * H, D)
    x = torch.randn(2, 3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = ffn(x)
        assert max_diff(out, reference_ffn(ffn, "maxout", x, pieces=pieces)) < TOL
        # the other plausible layout, (hidden, k) interleaved rows, must give something else
        pre = x @ ffn.w_in.weight.T
        interleaved = pre.unflatten(-1, (H, pieces)).amax(-1) @ ffn.w_out.weight.T
        assert max_diff(out, interleaved) > 1e-3


def test_gtu_is_tanh_gate_times_sigmoid_up_not_the_reverse():
    ffn = build_ffn("gtu")
    x = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    w_in, w_out = ffn.w_in.weight, ffn.w_out.weight
    reversed_gtu = (sigmoid(x @ w_in[:H].T) * tanh(x @ w_in[H:].T)) @ w_out.T
    with torch.no_grad():
        assert max_diff(ffn(x), reversed_gtu) > 1e-3


@pytest.mark.parametrize("name", VARIANTS)
def test_ffn_parameter_count(name):
    n_in = {"plain": 1, "gated": 2, "maxout": 2}[VARIANTS[name].kind]
    activation_params = 1 if name == "prelu" else 0
    ffn = FeedForward(FFNConfig(name=name), d_model=D, hidden=H)
    assert sum(p.numel() for p in ffn.parameters()) == (n_in + 1) * D * H + activation_params


def test_trainable_swish_beta_adds_one_parameter():
    ffn = FeedForward(FFNConfig(name="swiglu", swish_beta_trainable=True), d_model=D, hidden=H)
    assert sum(p.numel() for p in ffn.parameters()) == 3 * D * H + 1


# --------------------------------------------------------------------------- errors
def test_unknown_variant_lists_valid_names():
    with pytest.raises(ConfigError) as error:
        FeedForward(FFNConfig(name="swigluu"), d_model=D, hidden=H)
    for name in VARIANTS:
        assert name in str(error.value)


@pytest.mark.parametrize("name", ["gelu", "geglu"])
def test_unknown_gelu_approximate(name):
    with pytest.raises(ConfigError, match="gelu_approximate='erf'.*none, tanh, sigmoid"):
        FeedForward(FFNConfig(name=name, gelu_approximate="erf"), d_model=D, hidden=H)


@pytest.mark.parametrize("pieces", [1, 0])
def test_maxout_needs_two_pieces(pieces):
    with pytest.raises(ConfigError, match=f"pieces={pieces}.*>= 2"):
        FeedForward(FFNConfig(name="maxout", pieces=pieces), d_model=D, hidden=H)


# --------------------------------------------------------------------------- conf/ffn/*.yaml
def test_one_yaml_per_variant():
    assert sorted(p.stem for p in CONF_FFN.glob("*.yaml")) == sorted(VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_each_ffn_yaml_composes_to_its_variant(name):
    from ffnlab.config.compose import compose_config
    from ffnlab.config.schemas import to_dataclass

    cfg = compose_config([f"ffn={name}"])
    ffn_cfg = to_dataclass(FFNConfig, cfg.ffn)
    assert ffn_cfg.name == name
    assert FeedForward(ffn_cfg, d_model=D, hidden=H).kind == VARIANTS[name].kind


def test_unknown_ffn_choice_lists_available_options():
    from hydra.errors import MissingConfigException

    from ffnlab.config.compose import compose_config

    with pytest.raises(MissingConfigException) as error:
        compose_config(["ffn=nonexistent"])
    assert "swiglu" in str(error.value) and "relu" in str(error.value)
