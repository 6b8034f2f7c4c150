"""ffnlab -> Hugging Face: the one place that maps an ffnlab `Transformer`'s weights onto `LlamaForCausalLM`'s.

ffnlab's decoder is Llama's (pre-norm RMSNorm, RoPE on channel halves, no biases, optional GQA); what decides is the
FFN. Llama's MLP is down(act(gate(x)) * up(x)), so the gated variants whose up activation is the identity map onto it,
gate and up being the first and second halves of ffnlab's fused `w_in` (ffnlab.model.ffn.FeedForward):

    swiglu  silu                 (ffn.swish_beta=1, not trainable)
    geglu   gelu                 (exact erf) | gelu_pytorch_tanh (ffn.gelu_approximate=tanh) |
                                 quick_gelu, x·σ(1.702x) (ffn.gelu_approximate=sigmoid)
    reglu   relu
    glu     sigmoid
    bilinear linear              (the identity)

The others (plain, maxout, GTU's sigmoid up) have no Llama form, nor has `model.init=t5` with tied embeddings (its
head input scale). `transformers` is imported inside functions only: training processes never import it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ffnlab.data.corpus import EOD
from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import Transformer
from ffnlab.data.tokenizer import CHAR_UNKNOWN, TextTokenizer

# variant -> transformers' ACT2FN name of its gate activation (at the default options; `hidden_act` reads them)
HIDDEN_ACT = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu", "glu": "sigmoid", "bilinear": "linear"}
GELU_ACT = {"none": "gelu", "tanh": "gelu_pytorch_tanh", "sigmoid": "quick_gelu"}
# A sample the exported tokenizer must encode and decode as ffnlab's does (newlines, runs of spaces, punctuation,
# non-ASCII: a character vocabulary turns what it lacks into [UNK], on both sides alike).
TOKENIZER_SAMPLE = ("ROMEO:\nBut, soft! what light through yonder window breaks?\n\n  It is the east, and Juliet "
                    "is the sun.  -- 3.14; naïve café \u4e2d\u6587\t(end)\n")


class ExportError(ValueError):
    """A model Llama cannot express, or an export that would not be the same model: one line, said as is."""


def hidden_act(ffn_cfg: FFNConfig) -> str:
    """Llama's `hidden_act` computing this variant's gate activation, or ExportError naming what exports."""
    name = ffn_cfg.name
    if name not in HIDDEN_ACT:
        raise ExportError(f"Llama's MLP, down(act(gate(x)) * up(x)), cannot express ffn={name}; these export: "
                          f"{', '.join(HIDDEN_ACT)}")
    if name == "geglu":
        return GELU_ACT[ffn_cfg.gelu_approximate]
    if name == "swiglu" and (ffn_cfg.swish_beta != 1.0 or ffn_cfg.swish_beta_trainable):
        raise ExportError(f"ffn=swiglu with ffn.swish_beta={ffn_cfg.swish_beta:g}"
                          f"{' (trainable)' if ffn_cfg.swish_beta_trainable else ''} is not SiLU: Llama's MLP cannot "
                          "express it (swiglu exports at swish_beta=1, not trainable)")
    return HIDDEN_ACT[name]


def check_exportable(model: Transformer) -> str:
    """The model's `hidden_act` if LlamaForCausalLM can be the same function, else ExportError (one line)."""
    act = hidden_act(model.ffn_cfg)
    if model.head_input_scale != 1.0:
        raise ExportError("Llama has no head input scale: model.init=t5 with tied embeddings scales the head input "
                          "by d_model^-0.5; runs with model.init=gpt2 or model.tie_embeddings=false export")
    return act


def llama_config(model: Transformer, **overrides):
    """LlamaConfig at exactly `model`'s shapes (transformers' keyword arguments in `overrides` win)."""
    from transformers import LlamaConfig

    cfg = model.cfg
    return LlamaConfig(**{
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": model.ffn_hidden,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "hidden_act": check_exportable(model),
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,  # not Llama's 1 and 2: `export` sets ffnlab's end-of-document token when there is one
        "eos_token_id": None,
        "pad_token_id": None,
        **overrides,
    })


@torch.no_grad()
def llama_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """`model`'s weights under LlamaForCausalLM's names: q/k/v split from `wqkv`, gate/up from `w_in` (first and
    second half, as FeedForward chunks them). Pure torch; `lm_head.weight` is the embedding when tied."""
    cfg = model.cfg
    check_exportable(model)
    q_rows, kv_rows = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    state = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight,
             "lm_head.weight": model.head.weight}
    for i, block in enumerate(model.blocks):
        q, k, v = block.attn.wqkv.weight.split([q_rows, kv_rows, kv_rows])
        gate, up = block.ffn.w_in.weight.chunk(2)
        prefix = f"model.layers.{i}."
        state |= {
            f"{prefix}self_attn.q_proj.weight": q, f"{prefix}self_attn.k_proj.weight": k,
            f"{prefix}self_attn.v_proj.weight": v, f"{prefix}self_attn.o_proj.weight": block.attn.wo.weight,
            f"{prefix}mlp.gate_proj.weight": gate, f"{prefix}mlp.up_proj.weight": up,
            f"{prefix}mlp.down_proj.weight": block.ffn.w_out.weight,
            f"{prefix}input_layernorm.weight": block.attn_norm.weight,
            f"{prefix}post_attention_layernorm.weight": block.ffn_norm.weight,
        }
    return {key: value.detach() for key, value in state.items()}


@torch.no_grad()
def to_llama(model: Transformer, **config_overrides):
    """A LlamaForCausalLM computing the same function as `model`, its weights copied (every one: strict)."""
    from transformers import LlamaForCausalLM

    param = next(model.parameters())
    hf = LlamaForCausalLM(llama_config(model, **config_overrides)).to(device=param.device, dtype=param.dtype)
    hf.load_state_dict(llama_state_dict(model), strict=True)
    return hf.train(model.training)


def special_tokens(tokenizer: TextTokenizer) -> dict[str, str]:
    """The special tokens an exported tokenizer names: ffnlab's end-of-document token as bos and eos (GPT-2's
    convention) when its vocabulary has one; a character vocabulary's [UNK]. Otherwise none."""
    found = {}
    if tokenizer.hf.token_to_id(EOD) is not None:
        found |= {"bos_token": EOD, "eos_token": EOD}
    if tokenizer.hf.token_to_id(CHAR_UNKNOWN) is not None and tokenizer.char_table() is not None:
        found["unk_token"] = CHAR_UNKNOWN
    return found


def hf_tokenizer(tokenizer: TextTokenizer, max_length: int):
    """ffnlab's tokenizer as a transformers tokenizer (`AutoTokenizer` loads what its save_pretrained writes)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer.to_json()),
                                   clean_up_tokenization_spaces=False, model_max_length=max_length,
                                   **special_tokens(tokenizer))


def check_tokenizer(ours: TextTokenizer, theirs, text: str = TOKENIZER_SAMPLE) -> None:
    """ExportError unless `theirs` encodes `text` to ffnlab's ids and decodes them to ffnlab's text."""
    ids = ours.encode(text)
    if theirs(text, verbose=False)["input_ids"] != ids:
        raise ExportError("the exported tokenizer encodes the sample text otherwise than ffnlab's")
    if theirs.decode(ids) != ours.decode(ids):
        raise ExportError("the exported tokenizer decodes the sample text otherwise than ffnlab's")


@torch.no_grad()
def max_logit_difference(model: Transformer, hf, ids: torch.Tensor) -> float:
    """The largest |ffnlab logit - HF logit| over a batch of ids (B, T)."""
    return (model(ids).float() - hf(input_ids=ids).logits.float()).abs().max().item()


def sample_ids(model: Transformer, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random token ids over the whole vocabulary, a full context long (capped at 64 tokens)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.vocab_size, (batch, min(model.cfg.seq_len, 64)), generator=generator)


def token_ids(tokenizer: TextTokenizer) -> dict[str, int | None]:
    """bos, eos and pad: ffnlab's end-of-document token when the vocabulary has one (bos = eos as GPT-2's, pad = eos
    so batched generation needs no token of its own), else unset (a character vocabulary has no end token)."""
    eos = tokenizer.hf.token_to_id(EOD)
    return {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos}


def generation_config(tokenizer: TextTokenizer, max_length: int):
    from transformers import GenerationConfig

    return GenerationConfig(**token_ids(tokenizer), max_length=max_length)


LOGIT_TOLERANCE = 1e-4


def export(model: Transformer, tokenizer: TextTokenizer, out_dir: str | Path) -> dict:
    """Write `model` as a stock LlamaForCausalLM and `tokenizer` for AutoTokenizer into `out_dir` (config.json,
    model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json), after checking the HF model
    gives ffnlab's logits (to LOGIT_TOLERANCE) and the HF tokenizer ffnlab's ids and text. Returns a summary."""
    model = model.float().eval()
    act = check_exportable(model)
    hf = to_llama(model, **token_ids(tokenizer)).float().eval()
    difference = max_logit_difference(model, hf, sample_ids(model))
    if not math.isfinite(difference) or difference > LOGIT_TOLERANCE:
        raise ExportError(f"the Llama model's logits differ from ffnlab's by up to {difference:.3g} "
                          f"(> {LOGIT_TOLERANCE:g}): not exported")
    tok = hf_tokenizer(tokenizer, model.cfg.seq_len)
    check_tokenizer(tokenizer, tok)
    hf.generation_config = generation_config(tokenizer, model.cfg.seq_len)
    out_dir = Path(out_dir)
    hf.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    kind = "char" if tokenizer.char_table() is not None else json.loads(tokenizer.to_json())["model"]["type"]
    return {
        "ffn": model.ffn_cfg.name, "hidden_act": act, "parameters": sum(p.numel() for p in hf.parameters()),
        "tokenizer": kind, "vocab_size": tokenizer.vocab_size, "max_logit_difference": difference,
        "files": sorted(p.name for p in out_dir.iterdir()),
    }
