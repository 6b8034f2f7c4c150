"""HF `LlamaForCausalLM` at exactly an ffnlab model's shapes and weights (`transformers` is the `bench` extra).

Only the variants Llama's MLP can express: down(act(gate(x)) * up(x)) with act = hidden_act, i.e. SwiGLU (silu),
GEGLU (gelu, exact erf as ours) and ReGLU (relu). Attention is SDPA, nothing is compiled.
"""

from __future__ import annotations

import torch

from ffnlab.model import Transformer

HIDDEN_ACT = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}


def llama_config(model: Transformer):
    from transformers import LlamaConfig

    cfg = model.cfg
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=model.ffn_hidden,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        hidden_act=HIDDEN_ACT[model.ffn_cfg.name],
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        use_cache=False,
        attn_implementation="sdpa",
    )


@torch.no_grad()
def hf_llama(model: Transformer):
    """A LlamaForCausalLM computing the same function as `model` (its weights copied, gate/up and q/k/v split)."""
    from transformers import LlamaForCausalLM

    if model.ffn_cfg.name not in HIDDEN_ACT:
        raise ValueError(f"HF Llama's MLP cannot express ffn={model.ffn_cfg.name}; it can: {', '.join(HIDDEN_ACT)}")
    if model.head_input_scale != 1.0:
        raise ValueError("HF Llama has no head input scale (model.init=t5 with tied embeddings)")
    hf = LlamaForCausalLM(llama_config(model)).to(next(model.parameters()).device)
    cfg = model.cfg
    hf.model.embed_tokens.weight.copy_(model.embed.weight)
    hf.model.norm.weight.copy_(model.norm.weight)
    if not cfg.tie_embeddings:
        hf.lm_head.weight.copy_(model.head.weight)
    q_rows, kv_rows = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    for ours, theirs in zip(model.blocks, hf.model.layers):
        q, k, v = ours.attn.wqkv.weight.split([q_rows, kv_rows, kv_rows])
        theirs.self_attn.q_proj.weight.copy_(q)
        theirs.self_attn.k_proj.weight.copy_(k)
        theirs.self_attn.v_proj.weight.copy_(v)
        theirs.self_attn.o_proj.weight.copy_(ours.attn.wo.weight)
        gate, up = ours.ffn.w_in.weight.chunk(2)
        theirs.mlp.gate_proj.weight.copy_(gate)
        theirs.mlp.up_proj.weight.copy_(up)
        theirs.mlp.down_proj.weight.copy_(ours.ffn.w_out.weight)
        theirs.input_layernorm.weight.copy_(ours.attn_norm.weight)
        theirs.post_attention_layernorm.weight.copy_(ours.ffn_norm.weight)
    return hf
