"""Load a self-contained checkpoint and sample text from it."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.data.tokenizer import load_tokenizer_from_json

ACCEPTED = ("sample.py reads a run's checkpoints/last.ckpt as ffnlab's training writes it (tensors, numbers and "
            "strings: the weights, the config and the tokenizer)")


def unreadable(path: Path, error: Exception) -> str:
    """What a file torch.load(weights_only=True) refused is, in words that give no loading advice, and its cure."""
    if isinstance(error, pickle.UnpicklingError) and str(error).startswith("Weights only load failed"):
        return ("holds Python objects besides tensors and plain values (loading them would run code it names, "
                f"so it is not loaded); {ACCEPTED}")
    size = path.stat().st_size
    kind = "a zip archive, as PyTorch writes, but not a readable one" if zipfile.is_zipfile(path) else (
        "empty" if size == 0 else "not a PyTorch checkpoint file")
    return (f"is damaged or not a checkpoint ({kind}, {size:,} bytes); {ACCEPTED}; re-run its training to rewrite a "
            "damaged one (a resumed run continues from the previous good last.ckpt)")


def read_checkpoint(path: str | Path) -> dict:
    """A `last.ckpt` written by ffnlab.training.run, as plain tensors and values (never objects that would run code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; runs keep theirs at <run dir>/checkpoints/last.ckpt")
    try:  # plain types only (issue 14): a checkpoint cannot run code when it is loaded
        with warnings.catch_warnings():  # torch's pickle-protocol warning: a second line about a file we refuse
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - empty, truncated, not a checkpoint: one line naming the file
        # torch's own message is not quoted: for a file holding objects it advises weights_only=False, i.e. running
        # whatever code the file names (issue 23.12).
        raise ValueError(f"{path} {unreadable(path, error)}") from None
    if not isinstance(checkpoint, dict) or "ffnlab_model_config" not in checkpoint:
        raise ValueError(f"{path} is not an ffnlab checkpoint (it holds no ffnlab_model_config); {ACCEPTED}")
    return checkpoint


def model_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The Transformer's state dict from a checkpoint's (the LightningModule's `model.` prefix and torch.compile's
    `_orig_mod.` removed)."""
    return {key.removeprefix("model.").replace("_orig_mod.", ""): value
            for key, value in checkpoint["state_dict"].items()}


def load_checkpoint(path: str | Path) -> tuple[Transformer, object]:
    """(model in eval mode, tokenizer) from a `last.ckpt` written by ffnlab.training.run."""
    checkpoint = read_checkpoint(path)
    model = Transformer(ModelConfig(**checkpoint["ffnlab_model_config"]), FFNConfig(**checkpoint["ffnlab_ffn_config"]))
    model.load_state_dict(model_weights(checkpoint))
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
