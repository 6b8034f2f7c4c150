"""HF `LlamaForCausalLM` at exactly an ffnlab model's shapes and weights (`transformers` is the `bench` extra).

The mapping is ffnlab.downstream.export's (the one place that maps ffnlab weights onto Llama's). The benchmark times the
variants it always compared, SwiGLU (silu), GEGLU (gelu) and ReGLU (relu): `HIDDEN_ACT`; ffnlab.downstream.export.HIDDEN_ACT
also maps GLU and Bilinear. Attention is SDPA, nothing is compiled.
"""

from __future__ import annotations

from ffnlab.downstream import export
from ffnlab.model.decoder import Transformer

BENCHMARKED = ("swiglu", "geglu", "reglu")
HIDDEN_ACT = {name: export.HIDDEN_ACT[name] for name in BENCHMARKED}


def llama_config(model: Transformer):
    return export.llama_config(model, use_cache=False, attn_implementation="sdpa")


def hf_llama(model: Transformer):
    """A LlamaForCausalLM computing the same function as `model` (its weights copied, gate/up and q/k/v split);
    ValueError (one line) for what Llama cannot express."""
    return export.to_llama(model, use_cache=False, attn_implementation="sdpa")
