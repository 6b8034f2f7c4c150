"""Corpus -> tokenizer -> the token store -> (seed, index) windows -> the data module.

`ffnlab.data.TextDataModule` stays importable by that name, lazily (without loading Lightning for the other modules of
the package): it is the `_target_` every data config and every committed run record names, and a run's identity
hashes its config, so the name cannot move.
"""


def __getattr__(name: str):
    if name == "TextDataModule":
        from ffnlab.data.module import TextDataModule

        return TextDataModule
    raise AttributeError(f"module 'ffnlab.data' has no attribute {name!r}")
