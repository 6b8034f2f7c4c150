"""The decoder: every variant trains, attention is causal and RoPE-relative, init is paired across variants.

Attention and RoPE are checked against references written here (RoPE as complex rotation, attention as
an explicit masked softmax), not against the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import VARIANTS, FFNConfig
from ffnlab.model.decoder import Attention, ModelConfig, Transformer, apply_rope, rope_tables

TINY = dict(d_model=32, n_layers=2, n_heads=4, seq_len=16, vocab_size=50)
D_MODELS = (128, 256, 384, 512, 768, 1024)


def tiny(name: str = "swiglu", seed: int = 0, ffn: dict | None = None, **model) -> Transformer:
    return Transformer(ModelConfig(**(TINY | model)), FFNConfig(name=name, **(ffn or {})), seed=seed)


def tokens(batch: int, length: int, seed: int = 0, vocab: int = TINY["vocab_size"]) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- every variant trains
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_runs_forward_and_backward(name):
    model = tiny(name)
    idx = tokens(2, TINY["seq_len"])
    logits = model(idx)
    assert logits.shape == (2, TINY["seq_len"], TINY["vocab_size"])
    F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, dims=1).flatten()).backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None, param_name
        assert torch.isfinite(p.grad).all(), param_name
        assert p.grad.abs().sum() > 0, param_name


def test_trainable_swish_beta_gets_a_gradient_in_the_model():
    model = tiny("swiglu", ffn={"swish_beta_trainable": True})
    idx = tokens(2, 8)
    F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
    betas = [p for n, p in model.named_parameters() if n.endswith("ffn.act.beta")]
    assert len(betas) == TINY["n_layers"]
    assert all(b.grad is not None and b.grad.item() != 0 for b in betas)


# --------------------------------------------------------------------------- RoPE
def rope_reference(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Su et al. 2021 as complex multiplication: pair (x_i, x_{i+D/2}) at position m turns by m·θ^(-2i/D)."""
    T, D = x.shape[-2], x.shape[-1]
    pairs = torch.complex(x[..., : D // 2].double(), x[..., D // 2 :].double())
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * torch.arange(D // 2) / D)[None, :]
    turned = pairs * torch.polar(torch.ones_like(angle), angle)
    return torch.cat((turned.real, turned.imag), dim=-1)


def test_rope_matches_complex_rotation_and_preserves_norms():
    B, H, T, D = 2, 3, 24, 16
    cos, sin = rope_tables(T, D, 500.0)
    x = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(0))
    rotated = apply_rope(x, cos, sin)
    torch.testing.assert_close(rotated.double(), rope_reference(x, 500.0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])  # position 0 is not turned


def test_rope_rotates_in_fp32_under_bf16_autocast():
    """Under bf16 autocast q and k come out of wqkv in bf16: they are rotated in fp32 and rounded once at the end,
    so at every position the rotation is the fp32 one to bf16 rounding (rounding cos/sin to bf16 first turns far
    positions by another angle). A model cast to bf16 (precision=bf16-true) keeps its tables in fp32 (issue 22.8)."""
    B, H, T, D = 1, 2, 2048, 64
    cos, sin = rope_tables(T, D, 10000.0)
    attn = Attention(ModelConfig(d_model=H * D, n_heads=H, seq_len=T))
    hidden = torch.randn(B, T, H * D, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = attn.wqkv(hidden)[..., : H * D].view(B, T, H, D).transpose(1, 2)
        rotated = apply_rope(q, cos, sin)
    assert q.dtype == rotated.dtype == torch.bfloat16
    assert torch.equal(rotated, apply_rope(q.float(), cos, sin).bfloat16())
    model = Transformer(ModelConfig(**(TINY | {"vocab_size": 64})), FFNConfig(name="swiglu")).to(torch.bfloat16)
    assert model.rope_cos.dtype == model.rope_sin.dtype == torch.float32
    assert model.embed.weight.dtype == torch.bfloat16


def test_rope_scores_depend_only_on_relative_position():
    """q·k with q placed at m and k at n is a function of m - n alone, per head."""
    H, T, D = 3, 20, 8
    cos, sin = rope_tables(T, D, 10000.0)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(H, D, generator=gen), torch.randn(H, D, generator=gen)
    q_at = apply_rope(q[None, :, None, :].expand(1, H, T, D), cos, sin)[0]  # (H, T, D): q at every position
    k_at = apply_rope(k[None, :, None, :].expand(1, H, T, D), cos, sin)[0]
    scores = torch.einsum("hmd,hnd->hmn", q_at, k_at)  # scores[h, m, n] = q at m · k at n
    for m, n in [(5, 2), (7, 7), (3, 9), (0, 4)]:
        for shift in (1, 4, 10):
            torch.testing.assert_close(scores[:, m + shift, n + shift], scores[:, m, n], atol=1e-5, rtol=1e-5)
        for other in (1, 2):  # a different relative offset gives a different score
            assert (scores[:, m, n + other] - scores[:, m, n]).abs().min() > 1e-3


# --------------------------------------------------------------------------- attention and causality
def attention_reference(attn: Attention, x: torch.Tensor, theta: float) -> torch.Tensor:
    """softmax(QKᵀ/√d + causal mask)V, each query head h reading kv head h // (n_heads / n_kv_heads)."""
    B, T, _ = x.shape
    H, KV, hd = attn.n_heads, attn.n_kv_heads, attn.head_dim
    w = attn.wqkv.weight.detach().double()
    x = x.double()
    q = (x @ w[: H * hd].T).view(B, T, H, hd).transpose(1, 2)
    k = (x @ w[H * hd : (H + KV) * hd].T).view(B, T, KV, hd).transpose(1, 2)
    v = (x @ w[(H + KV) * hd :].T).view(B, T, KV, hd).transpose(1, 2)
    q, k = rope_reference(q, theta), rope_reference(k, theta)
    group = H // KV
    k, v = k[:, [h // group for h in range(H)]], v[:, [h // group for h in range(H)]]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    y = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
    return y.transpose(1, 2).reshape(B, T, H * hd) @ attn.wo.weight.detach().double().T


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])  # multi-head, grouped-query, multi-query
def test_attention_matches_reference(n_kv_heads):
    cfg = ModelConfig(**(TINY | {"n_kv_heads": n_kv_heads, "rope_theta": 100.0}))
    torch.manual_seed(0)
    attn = Attention(cfg)
    assert attn.wqkv.weight.shape == ((4 + 2 * n_kv_heads) * 8, 32)
    cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
    x = torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = attention_reference(attn, x, 100.0)
        torch.testing.assert_close(attn(x, cos, sin).double(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_model_is_causal(n_kv_heads):
    model = tiny("swiglu", n_kv_heads=n_kv_heads, init_std=0.2)  # large weights: any leak would show
    idx = tokens(2, 12)
    with torch.no_grad():
        base = model(idx)
        for t in (0, 5, 11):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1) % TINY["vocab_size"]
            out = model(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
            assert (out[:, t:] - base[:, t:]).abs().amax(dim=-1).min() > 1e-3  # the token and every later one


# --------------------------------------------------------------------------- paired init
def test_same_seed_gives_identical_non_ffn_weights_across_variants():
    relu, swiglu = tiny("relu", seed=3), tiny("swiglu", seed=3)
    relu_params, swiglu_params = dict(relu.named_parameters()), dict(swiglu.named_parameters())
    shared = [n for n in relu_params if ".ffn." not in n]
    assert shared == [n for n in swiglu_params if ".ffn." not in n]
    assert {"embed.weight", "norm.weight", "blocks.0.attn.wqkv.weight", "blocks.1.attn_norm.weight"} <= set(shared)
    for name in shared:
        assert torch.equal(relu_params[name], swiglu_params[name]), name
    assert relu.ffn_hidden != swiglu.ffn_hidden
    assert relu_params["blocks.0.ffn.w_in.weight"].shape != swiglu_params["blocks.0.ffn.w_in.weight"].shape


def test_init_is_deterministic_per_seed_and_differs_between_seeds():
    a, b, c = tiny("relu", seed=0), tiny("relu", seed=0), tiny("relu", seed=1)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        if pa.ndim == 2:
            assert not torch.equal(pa, pc), name
    # parameters of one model come from distinct streams, not one reused generator
    assert not torch.equal(a.blocks[0].attn.wo.weight, a.blocks[1].attn.wo.weight)


def test_init_scales():
    """Residual outputs start at init_std/√(2·n_layers) (GPT-2), other matrices at init_std, norms at 1."""
    init_std, n_layers = 0.02, 3
    model = Transformer(
        ModelConfig(d_model=256, n_layers=n_layers, n_heads=4, seq_len=16, vocab_size=512, tie_embeddings=False),
        FFNConfig(name="prelu"),
    )
    residual_std = init_std / math.sqrt(2 * n_layers)
    seen = set()
    for name, p in model.named_parameters():
        if name.endswith(("attn.wo.weight", "ffn.w_out.weight")):
            expected = residual_std
        elif p.ndim == 2:
            expected = init_std
        elif name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
            seen.add("norm")
            continue
        else:
            assert name.endswith("ffn.act.weight") and p.item() == pytest.approx(0.25), name  # PReLU keeps its init
            seen.add("prelu")
            continue
        assert p.std().item() == pytest.approx(expected, rel=0.03), name  # >= 65k samples: ~0.3% sampling error
        assert abs(p.mean().item()) < 0.05 * expected, name
        seen.add("residual" if expected == residual_std else "matrix")
    assert seen == {"residual", "matrix", "norm", "prelu"}


# --------------------------------------------------------------------------- config errors
def test_d_model_not_divisible_by_heads_names_both():
    with pytest.raises(ConfigError, match=r"d_model=100\b.*n_heads=8\b"):
        ModelConfig(d_model=100, n_heads=8)


def test_kv_heads_must_divide_heads():
    with pytest.raises(ConfigError, match=r"n_kv_heads=3\b.*n_heads=4\b"):
        ModelConfig(d_model=32, n_heads=4, n_kv_heads=3)


def test_odd_head_size_is_rejected_for_rope():
    with pytest.raises(ConfigError, match="even"):
        ModelConfig(d_model=36, n_heads=4)


def test_unset_vocab_and_too_long_input():
    with pytest.raises(ConfigError, match="vocab_size"):
        Transformer(ModelConfig(**(TINY | {"vocab_size": None})), FFNConfig(name="relu"))
    with pytest.raises(ValueError, match="seq_len=16"):
        tiny()(tokens(1, 17))


def test_unknown_ffn_in_model_lists_valid_names():
    with pytest.raises(ConfigError) as error:
        tiny("swishglu")
    assert all(name in str(error.value) for name in VARIANTS)


# --------------------------------------------------------------------------- the real config
@pytest.mark.parametrize("d_model", D_MODELS)
def test_d_model_override_composes_with_default_heads(d_model):
    from ffnlab.config.compose import compose_config
    from ffnlab.config.schemas import to_dataclass

    cfg = compose_config([f"model.d_model={d_model}"])
    model_cfg = to_dataclass(ModelConfig, cfg.model)
    assert model_cfg.d_model == d_model and model_cfg.head_dim * model_cfg.n_heads == d_model


# --------------------------------------------------------------------------- optimisation
def test_decay_groups():
    from ffnlab.training.optim import decay_groups

    model = Transformer(
        ModelConfig(**(TINY | {"tie_embeddings": False})), FFNConfig(name="swish", swish_beta_trainable=True)
    )
    groups = decay_groups(model, weight_decay=0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    decay, no_decay = ({id(p) for p in g["params"]} for g in groups)
    names = {id(p): n for n, p in model.named_parameters()}
    assert not decay & no_decay and decay | no_decay == set(names)
    assert {names[i] for i in no_decay} == {"embed.weight", "norm.weight"} | {
        f"blocks.{i}.{n}" for i in range(2) for n in ("attn_norm.weight", "ffn_norm.weight", "ffn.act.beta")
    }
    matrices = ("attn.wqkv.weight", "attn.wo.weight", "ffn.w_in.weight", "ffn.w_out.weight")
    assert {names[i] for i in decay} == {"head.weight"} | {f"blocks.{i}.{n}" for i in range(2) for n in matrices}


def test_prelu_slope_is_not_decayed():
    from ffnlab.training.optim import decay_groups

    model = tiny("prelu")
    decay, no_decay = decay_groups(model, 0.1)
    slopes = [b.ffn.act.weight for b in model.blocks]
    assert all(any(p is s for p in no_decay["params"]) for s in slopes)
    assert not any(p is s for p in decay["params"] for s in slopes)


@pytest.mark.parametrize("fused", [None, True, False])
def test_adamw_is_fused_where_asked_over_the_same_groups(fused):
    from ffnlab.training.optim import OptimConfig, adamw, decay_groups

    model = tiny("swiglu")
    groups = decay_groups(model, 0.1)
    optimizer = adamw(groups, OptimConfig(fused=fused), torch.device("cpu"))
    assert all(g["fused"] is bool(fused) for g in optimizer.param_groups)  # null: the CPU loop, as committed
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert [[id(p) for p in g["params"]] for g in optimizer.param_groups] == [[id(p) for p in g["params"]]
                                                                              for g in groups]


def test_fused_adamw_on_cpu_is_adamw_to_float_rounding():
    from ffnlab.training.optim import OptimConfig, adamw, decay_groups

    steps = {}
    for fused in (False, True):
        model = tiny("swiglu")
        optimizer = adamw(decay_groups(model, 0.1), OptimConfig(fused=fused), torch.device("cpu"))
        gen = torch.Generator().manual_seed(3)
        for _ in range(5):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen) * 1e-2
            optimizer.step()
        steps[fused] = [p.detach().clone() for p in model.parameters()]
    for loop, fused in zip(steps[False], steps[True]):
        torch.testing.assert_close(fused, loop, rtol=1e-5, atol=1e-6)


def test_lr_schedules():
    from ffnlab.training.optim import OptimConfig, lr_multiplier

    warmup, max_steps = 10, 110
    cosine = OptimConfig(warmup_steps=warmup, schedule="cosine", min_lr_ratio=0.1)
    warm = [lr_multiplier(s, cosine, max_steps) for s in range(warmup)]
    assert warm == pytest.approx([(s + 1) / warmup for s in range(warmup)])  # linear, reaching 1 at the end
    assert lr_multiplier(warmup, cosine, max_steps) == pytest.approx(1.0)
    assert lr_multiplier(60, cosine, max_steps) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way: cos(π/2) = 0
    assert lr_multiplier(max_steps, cosine, max_steps) == pytest.approx(0.1)
    assert lr_multiplier(max_steps + 50, cosine, max_steps) == pytest.approx(0.1)
    decay = [lr_multiplier(s, cosine, max_steps) for s in range(warmup, max_steps + 1)]
    assert all(a > b for a, b in zip(decay, decay[1:]))

    inv = OptimConfig(warmup_steps=warmup, schedule="inverse_sqrt")  # T5's: flat at the peak, then ∝ 1/√step
    assert [lr_multiplier(s, inv, max_steps) for s in range(warmup + 1)] == [1.0] * (warmup + 1)
    for step in (warmup, 40, 250, 1000):
        assert lr_multiplier(step, inv, max_steps) == pytest.approx(math.sqrt(warmup / step))
    ramp = OptimConfig(warmup_steps=warmup, schedule="linear_inverse_sqrt")  # a linear ramp, then the same decay
    assert [lr_multiplier(s, ramp, max_steps) for s in range(warmup)] == pytest.approx(warm)
    for step in (warmup, 40, 250, 1000):
        assert lr_multiplier(step, ramp, max_steps) == pytest.approx(math.sqrt(warmup / step))
    constant = OptimConfig(warmup_steps=warmup, schedule="constant")
    assert [lr_multiplier(s, constant, max_steps) for s in (warmup, 500)] == [1.0, 1.0]


# --------------------------------------------------------------------------- T5 initialisation
TRUNCATED_STD = 0.8796  # std of a unit normal truncated at ±2: tf.truncated_normal_initializer keeps it


@pytest.mark.parametrize("tied", [True, False])
def test_t5_init_stds(tied):
    """Mesh-TF T5: embedding std 1; attention fan-in (q adapted to SDPA's own 1/sqrt(head_dim)); FFN and an untied
    head fan-in truncated normals; a tied head's input scaled by d_model^-0.5 so the first logits are O(1)."""
    d, vocab = 256, 2048
    model = Transformer(
        ModelConfig(d_model=d, n_layers=2, n_heads=4, seq_len=16, vocab_size=vocab, tie_embeddings=tied, init="t5"),
        FFNConfig(name="relu"),
    )
    hidden = model.ffn_hidden
    assert model.embed.weight.std().item() == pytest.approx(1.0, rel=0.02)
    for block in model.blocks:
        assert block.attn.wqkv.weight.std().item() == pytest.approx(d**-0.5, rel=0.02)
        assert block.attn.wo.weight.std().item() == pytest.approx(d**-0.5, rel=0.02)
        for weight, fan_in in ((block.ffn.w_in.weight, d), (block.ffn.w_out.weight, hidden)):
            assert weight.std().item() == pytest.approx(TRUNCATED_STD * fan_in**-0.5, rel=0.02)
            assert weight.abs().max().item() <= 2 * fan_in**-0.5
    if not tied:
        assert model.head.weight.std().item() == pytest.approx(TRUNCATED_STD * d**-0.5, rel=0.02)
        assert model.head_input_scale == 1.0
    else:
        assert model.head_input_scale == d**-0.5
    logits = model(torch.randint(0, vocab, (4, 16)))
    assert 0.3 < logits.std().item() < 3.0  # not sqrt(d_model) = 16 times too large


def test_t5_init_keeps_variants_paired():
    cfg = ModelConfig(**(TINY | {"init": "t5"}))
    relu, swiglu = Transformer(cfg, FFNConfig(name="relu"), seed=5), Transformer(cfg, FFNConfig(name="swiglu"), seed=5)
    shared = {n: p for n, p in relu.named_parameters() if ".ffn." not in n}
    assert shared and all(torch.equal(p, dict(swiglu.named_parameters())[n]) for n, p in shared.items())


def test_unknown_init_is_one_clear_error():
    with pytest.raises(ConfigError, match="model.init='xavier'.*gpt2, t5"):
        ModelConfig(init="xavier")


# --------------------------------------------------------------------------- GPU fast paths (issue 22.8)
@pytest.mark.parametrize("precision, param_dtype, reduce_dtype", [
    ("bf16-mixed", torch.bfloat16, torch.float32), ("bf16-true", torch.bfloat16, torch.float32),
    ("32-true", None, None)])
def test_fsdp_mixed_precision_computes_in_bf16_and_reduces_in_fp32(precision, param_dtype, reduce_dtype):
    from ffnlab.training.module import fsdp_mixed_precision

    policy = fsdp_mixed_precision(precision)
    assert (policy.param_dtype, policy.reduce_dtype, policy.output_dtype) == (param_dtype, reduce_dtype, None)
    assert not policy.cast_forward_inputs  # the blocks' inputs include the fp32 RoPE tables (next test)


def test_fsdp_under_bf16_computes_blocks_in_bf16_with_fp32_rope_tables(tmp_path):
    """LanguageModel.configure_model on a one-process gloo mesh shaped as ModelParallelStrategy's, at bf16-mixed:
    the blocks are sharded and compute in bf16, their gradients come back in fp32 to fp32 shards, and the RoPE
    tables, which the blocks take as inputs, reach attention in fp32 (FSDP2 casts a module's floating-point inputs
    to param_dtype unless its policy says not to)."""
    from types import SimpleNamespace

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from ffnlab.training.module import LanguageModel
    from ffnlab.training.optim import OptimConfig

    module = LanguageModel(ModelConfig(**TINY), FFNConfig(name="swiglu"), OptimConfig(), seed=0, max_steps=1)
    module.trainer = SimpleNamespace(precision="bf16-mixed")  # all configure_model reads of the Trainer
    seen = []
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        module._device_mesh = init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
        module.configure_model()
        module.model.blocks[0].attn.register_forward_pre_hook(lambda _, args: seen.append([a.dtype for a in args]))
        loss_sum, _ = module.model(tokens(2, 16), tokens(2, 16, seed=1))
        loss_sum.backward()
    finally:
        dist.destroy_process_group()
    assert seen == [[torch.bfloat16, torch.float32, torch.float32]]  # x, cos, sin
    weight = module.model.blocks[0].attn.wqkv.weight
    assert isinstance(weight, DTensor) and weight.dtype == weight.grad.dtype == torch.float32


def test_compiled_blocks_keep_their_eager_names():
    """torch_compile compiles each block in its place, and every parameter keeps its eager name: name-keyed init,
    the decay groups, checkpoints and Lightning's FSDP loader (which looks the model's own names up in the
    checkpoint) see one set of names whether or not the run compiled. Compiling again (configure_model runs for
    validate and test too) keeps the blocks' first compilation."""
    from ffnlab.model.decoder import compile_blocks

    compiled, eager = tiny(), tiny()
    compile_blocks(compiled)
    first = [block._compiled_call_impl for block in compiled.blocks]  # nn.Module.compile's compiled __call__
    compile_blocks(compiled)
    assert all(f is not None for f in first) and [b._compiled_call_impl for b in compiled.blocks] == first
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert [name for name, _ in compiled.named_parameters()] == [name for name, _ in eager.named_parameters()]
    compiled.load_state_dict(eager.state_dict())  # strict: a checkpoint of either loads into the other
