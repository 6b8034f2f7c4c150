"""Load a self-contained checkpoint and sample text from it."""

from __future__ import annotations

from pathlib import Path

import torch

from ffnlab.ffn import FFNConfig
from ffnlab.model import ModelConfig, Transformer
from ffnlab.tokenizer import load_tokenizer_from_json


def load_checkpoint(path: str | Path) -> tuple[Transformer, object]:
    """(model in eval mode, tokenizer) from a `last.ckpt` written by ffnlab.train."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; runs keep theirs at <run dir>/checkpoints/last.ckpt")
    try:  # plain types only (issue 14): a checkpoint cannot run code when it is loaded
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - empty, truncated, not a checkpoint: one line naming the file
        raise ValueError(f"{path} is damaged or not a checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'no detail'}); re-run its training to "
                         "rewrite it (a resumed run continues from the previous good last.ckpt)") from None
    if not isinstance(checkpoint, dict) or "ffnlab_model_config" not in checkpoint:
        raise ValueError(f"{path} is not an ffnlab checkpoint (it holds no ffnlab_model_config)")
    model = Transformer(ModelConfig(**checkpoint["ffnlab_model_config"]), FFNConfig(**checkpoint["ffnlab_ffn_config"]))
    state = {
        key.removeprefix("model.").replace("_orig_mod.", ""): value
        for key, value in checkpoint["state_dict"].items()
    }
    model.load_state_dict(state)
    return model.eval(), load_tokenizer_from_json(checkpoint["ffnlab_tokenizer"])


@torch.no_grad()
def generate(
    model: Transformer, ids: list[int], max_new_tokens: int, temperature: float = 0.8, top_k: int | None = 50,
    seed: int = 0,
) -> list[int]:
    """Autoregressive sampling; the context is cropped to the model's seq_len."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.tensor([ids or [0]], dtype=torch.long)
    for _ in range(max_new_tokens):
        logits = model(idx[:, -model.cfg.seq_len :])[0, -1].float()
        if temperature <= 0:
            next_id = logits.argmax().view(1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            next_id = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        idx = torch.cat([idx, next_id.view(1, 1)], dim=1)
    return idx[0, len(ids or [0]) :].tolist()


def unknown_characters(tokenizer, text: str) -> list[str]:
    """The distinct characters of `text` a character vocabulary lacks (byte-level BPE encodes any text)."""
    table = tokenizer.char_table() if hasattr(tokenizer, "char_table") else None
    if table is None:
        return []
    known = set(table[0].tolist())
    return sorted({c for c in text if ord(c) not in known})
