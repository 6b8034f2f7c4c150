"""The hidden-size rule, parameter counts and FLOPs, checked against arithmetic written out here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import VARIANTS, FFNConfig, solve_ffn_hidden
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.model.sizes import STAT_KEYS, model_stats

PARAMS_SCRIPT = Path(__file__).parents[1] / "scripts" / "params.py"
D_MODELS = (128, 256, 384, 512, 768, 1024)
GATED = [n for n, v in VARIANTS.items() if v.kind == "gated"]
PLAIN = [n for n, v in VARIANTS.items() if v.kind == "plain"]


def stats(name: str, d_model: int = 32, **model) -> dict[str, int]:
    cfg = dict(d_model=d_model, n_layers=2, n_heads=4, seq_len=16, vocab_size=50) | model
    return model_stats(ModelConfig(**cfg), FFNConfig(name=name))


# --------------------------------------------------------------------------- the hidden-size rule
@pytest.mark.parametrize("d_model", D_MODELS)
def test_every_variant_matches_relus_ffn_parameters_within_1_percent(d_model):
    relu = stats("relu", d_model)["params_ffn"]
    assert relu == 2 * 2 * d_model * 4 * d_model  # the budget: 2 layers x 2 matrices of d x 4d
    for name in VARIANTS:
        assert stats(name, d_model)["params_ffn"] == pytest.approx(relu, rel=0.01), name


def test_paper_widths_at_d_model_768():
    """Shazeer 2020, sec. 2: d_ff 3072 for two-matrix FFNs, 2048 for three-matrix ones."""
    for name in VARIANTS:
        expected = 2048 if VARIANTS[name].kind in ("gated", "maxout") else 3072
        assert solve_ffn_hidden(FFNConfig(name=name), 768) == expected, name


@pytest.mark.parametrize(
    "d_model,multiple_of,expected",
    [
        (128, 8, 344),  # 2·512/3 = 341.33 -> 42.67 eighths -> 43·8 = 344 (floor would give 336)
        (100, 8, 264),  # 2·400/3 = 266.67 -> 33.33 eighths -> 33·8 = 264 (ceil would give 272)
        (512, 128, 1408),  # 2·2048/3 = 1365.33 -> 10.67·128 -> 11·128 = 1408 (floor: 1280)
        (512, 256, 1280),  # 1365.33 -> 5.33·256 -> 5·256 = 1280 (ceil: 1536)
        (768, 256, 2048),  # exact
        (4, 64, 64),  # 10.67 rounds to 0 multiples: never narrower than one multiple
    ],
)
def test_gated_width_rounds_to_nearest_multiple(d_model, multiple_of, expected):
    assert solve_ffn_hidden(FFNConfig(name="swiglu", multiple_of=multiple_of), d_model) == expected


def test_match_none_keeps_the_budget_width_for_every_variant():
    for d_model in (128, 768):
        widths = {name: solve_ffn_hidden(FFNConfig(name=name, match="none"), d_model) for name in VARIANTS}
        assert set(widths.values()) == {4 * d_model}, widths
    assert solve_ffn_hidden(FFNConfig(name="swiglu", match="none", budget_mult=2.0), 128) == 256


def test_budget_mult_scales_the_budget():
    assert solve_ffn_hidden(FFNConfig(name="relu", budget_mult=2.0), 256) == 512
    assert solve_ffn_hidden(FFNConfig(name="swiglu", budget_mult=3.0), 256) == 512  # 2·768/3


@pytest.mark.parametrize("pieces,expected", [(2, 344), (3, 256), (4, 208)])
def test_maxout_width_is_two_over_k_plus_one_of_the_budget(pieces, expected):
    """k pieces + W_out = k+1 matrices: h = 2·(4d)/(k+1), to the nearest 8 (d=128: 341.33, 256, 204.8)."""
    hidden = solve_ffn_hidden(FFNConfig(name="maxout", pieces=pieces), 128)
    assert hidden == expected
    assert abs(hidden - 2 / (pieces + 1) * 4 * 128) <= 4


@pytest.mark.parametrize("options, said", [
    ({"match": "flops"}, "ffn.match='flops' is not accepted; give params or none"),
    ({"multiple_of": 0}, "ffn.multiple_of=0 is not accepted"),
    ({"name": "maxout", "pieces": 1}, "ffn.pieces=1 is not accepted"),
    ({"budget_mult": -1.0}, "ffn.budget_mult=-1.0 is not accepted; give a finite number > 0"),  # issue 23.5
    ({"budget_mult": 0.0}, "ffn.budget_mult=0.0 is not accepted"),
    ({"gelu_approximate": "foo"}, "ffn.gelu_approximate='foo' is not accepted; give one of none, tanh, sigmoid"),
    ({"swish_beta": float("nan")}, "ffn.swish_beta=nan is not accepted"),
])
def test_every_ffn_key_is_checked_whatever_the_variant(options, said):
    """relu reads neither gelu_approximate nor swish_beta: a bad value is still refused in one line (issue 23.5:
    budget_mult -1 and 0 and gelu_approximate=foo under relu were accepted)."""
    with pytest.raises(ConfigError) as error:
        FFNConfig(**({"name": "relu"} | options))
    assert str(error.value) == said or str(error.value).startswith(said)


def test_an_unknown_variant_lists_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        solve_ffn_hidden(FFNConfig(name="nonexistent"), 128)
    assert all(name in str(error.value) for name in VARIANTS)


# --------------------------------------------------------------------------- counts of a built model
@pytest.mark.parametrize("tie_embeddings", [True, False])
@pytest.mark.parametrize("name", VARIANTS)
def test_model_stats_match_a_built_model(name, tie_embeddings):
    model_cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, seq_len=16, vocab_size=50, tie_embeddings=tie_embeddings)
    ffn_cfg = FFNConfig(name=name)
    model = Transformer(model_cfg, ffn_cfg)
    result = model_stats(model_cfg, ffn_cfg)
    assert set(result) == set(STAT_KEYS)

    h = model.ffn_hidden
    n_in = {"plain": 1, "gated": 2, "maxout": ffn_cfg.pieces}[VARIANTS[name].kind]
    activation_params = 1 if name == "prelu" else 0  # PReLU's single slope
    assert result["ffn_hidden"] == h == solve_ffn_hidden(ffn_cfg, 32)
    assert result["params_ffn"] == 2 * ((n_in + 1) * 32 * h + activation_params)
    assert result["params_ffn"] == sum(p.numel() for b in model.blocks for p in b.ffn.parameters())
    assert result["params_total"] == sum(p.numel() for p in model.parameters())
    embedding = 50 * 32 * (1 if tie_embeddings else 2)
    assert result["params_non_embedding"] == result["params_total"] - embedding


def test_hand_computed_counts_and_flops():
    """d=32, L=2, 4 heads, T=16, V=50, relu: h = 2·(4·32)/2 = 128."""
    d, L, T, V, h = 32, 2, 16, 50, 128
    per_layer_matmul = d * 3 * d + d * d + d * h + h * d  # wqkv 3072 + wo 1024 + w_in 4096 + w_out 4096
    assert per_layer_matmul == 12288
    matmul = L * per_layer_matmul  # 24576
    flops = 6 * (matmul + d * V) + 12 * L * T * d  # 6·(24576 + 1600) + 12·2·16·32 = 157056 + 12288
    assert flops == 169344
    per_layer_params = per_layer_matmul + 2 * d  # + two RMSNorm gains
    non_embedding = L * per_layer_params + d  # + the final norm: 24736

    tied, untied = stats("relu"), stats("relu", tie_embeddings=False)
    assert tied == {
        "ffn_hidden": 128,
        "params_ffn": L * 2 * d * h,
        "params_total": d * V + non_embedding,  # 26336
        "params_non_embedding": non_embedding,
        "flops_per_token": flops,
    }
    assert untied["params_total"] == 2 * d * V + non_embedding  # 27936: embedding and head both counted
    assert untied["params_non_embedding"] == non_embedding
    assert untied["flops_per_token"] == flops  # the head matmul is there either way


def test_flops_of_a_gated_gqa_model():
    """swiglu, 2 kv heads of 8: h = round(256/3 / 8)·8 = 88; wqkv = 32·(4 + 2·2)·8 = 2048."""
    d, L, T, V, h = 32, 2, 16, 50, 88
    matmul = L * (d * 64 + d * d + d * 2 * h + h * d)  # 2·(2048 + 1024 + 5632 + 2816) = 23040
    assert stats("swiglu", n_kv_heads=2)["flops_per_token"] == 6 * (matmul + d * V) + 12 * L * T * d == 160128


# --------------------------------------------------------------------------- scripts/params.py
def load_params_script():
    spec = importlib.util.spec_from_file_location("ffnlab_params_script", PARAMS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_script_json(capsys):
    params = load_params_script()
    assert params.main(["--json", "model.vocab_size=1024"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and [row["ffn"] for row in rows] == list(VARIANTS)
    keys = {"ffn", "ffn_hidden", "params_ffn", "params_total", "params_non_embedding", "flops_per_token"}
    assert all(set(row) == keys for row in rows)
    by_name = {row["ffn"]: row for row in rows}
    # conf/model/tiny.yaml: d_model 128 -> budget width 512, gated 2·512/3 -> 344
    assert by_name["relu"]["ffn_hidden"] == 512 and by_name["swiglu"]["ffn_hidden"] == 344
    assert by_name["relu"]["params_total"] - by_name["relu"]["params_non_embedding"] == 1024 * 128


def test_params_script_reports_config_errors(capsys):
    params = load_params_script()
    assert params.main(["model.d_model=100", "model.vocab_size=1024"]) == 2
    assert "d_model=100" in capsys.readouterr().err


@pytest.mark.parametrize("options, said", [
    ({"lr": -1.0}, "optim.lr=-1.0 is not accepted; give a finite number > 0"),
    ({"warmup_steps": -5}, "optim.warmup_steps=-5 is not accepted; give an integer >= 0"),
])
def test_the_optim_error_names_the_key_that_is_wrong(options, said):
    """Issue 23.10: the message named both optim.lr and optim.warmup_steps when only one was wrong."""
    from ffnlab.training.optim import OptimConfig

    with pytest.raises(ConfigError) as error:
        OptimConfig(**options)
    assert str(error.value) == said


def test_a_study_is_costed_at_the_mfu_its_compile_setting_is_benchmarked_at():
    """experiment=glu_variants compiles its blocks: scripts/params.py costs it at the MFU assumed for a compiled run
    (an eager one at the eager assumption), and scripts/benchmark.py times the compiled step for that config without
    being asked, so the MFU it measures for --mfu is the one of the runs the study makes (issue 22.8)."""
    from ffnlab.config.compose import compose_config

    params = load_params_script()
    spec = importlib.util.spec_from_file_location("ffnlab_benchmark_script", PARAMS_SCRIPT.with_name("benchmark.py"))
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    one_point = ["hydra.sweeper.params.ffn=swiglu", "hydra.sweeper.params.seed=0"]  # of the 24, costed alike
    for torch_compile in (True, False):
        overrides = ["experiment=glu_variants", f"torch_compile={str(torch_compile).lower()}"]
        cost = params.study_cost([*overrides, *one_point])
        assert (cost["mfu"], cost["mfu_assumed"], cost["torch_compile"]) == (
            params.ASSUMED_MFU[torch_compile], True, [torch_compile])
        timed = benchmark.modes(benchmark.parse([]), compose_config(overrides))
        assert timed == (("", benchmark.COMPILED) if torch_compile else ("",))
    measured = params.study_cost(["experiment=glu_variants", *one_point], mfu=0.25)
    assert (measured["mfu"], measured["mfu_assumed"]) == (0.25, False)
    assert params.ASSUMED_MFU[True] > params.ASSUMED_MFU[False]
