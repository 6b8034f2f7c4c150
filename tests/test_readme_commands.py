"""Every command the README (and docs/) writes runs as written (issue 23.8): its overrides compose with Hydra (a key
the config lacks needs a `+`), and the composed config passes the checks train.py makes before any work (a key added
with `+` must be one something reads; values must be accepted). Nothing is run: each command is composed in-process,
one point per value of each swept key (a sweep's values are covered, not its whole product).

Commands are `python train.py ...` and `python scripts/<name>.py ...`, in fenced code blocks (continuation lines
joined, `&&` split, comments dropped) and in inline code spans; an inline span of two or more overrides is the tail of
a command on the default config (`data.tokenizer=bpe data.vocab_size=1024`) and is checked the same way. A single
inline override is a note on one key whose context (the data config it applies to) the prose gives, so it is left
out. `<placeholders>` become a plain value, `...` and `[-m]` are elisions.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
COMMAND = re.compile(r"\bpython3? +(\S*train\.py|scripts/\w+\.py)(?=\s|$)(.*)")
OVERRIDE = re.compile(r"^[+~]?[A-Za-z_][\w./@-]*=")
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)

# A command the README writes to show a failure: the one line it must fail with.
FAILS_ON_PURPOSE = {
    "train.py -m trainer=ddp_cpu optim.lr=3e-3,-1,1e-3": "optim.lr=-1.0 is not accepted",  # a failing sweep point
}


def _words(text: str) -> list[str]:
    text = re.sub(r"<[^>]*>", "value", text.replace("\n", " "))
    return [w for w in shlex.split(text, comments=True) if w not in ("...", "[-m]")]


def written_commands() -> list[tuple[str, str, list[str]]]:
    """(where, program, arguments) of every command in the README and docs/."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        pieces = [line for block in FENCED.findall(text) for line in block.replace("\\\n", " ").splitlines()]
        prose = FENCED.sub("", text)
        spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
        pieces += spans
        where = doc.relative_to(REPO).as_posix()
        for piece in pieces:
            for part in piece.split("&&"):
                match = COMMAND.search(part)
                if match:
                    found.append((where, Path(match.group(1)).name if "train.py" in match.group(1) else
                                  match.group(1), _words(match.group(2))))
        for span in spans:
            words = _words(span)
            if len(words) >= 2 and all(OVERRIDE.match(w) for w in words) and not COMMAND.search(span):
                found.append((where, "train.py", words))
    return found


@cache
def script_flags(script: str) -> tuple[set[str], bool]:
    """(the flags a script's argparse defines, whether it takes Hydra overrides), read from its source."""
    source = (REPO / script).read_text(encoding="utf-8")
    flags = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))
    takes_overrides = '"overrides"' in source or "compose_config(argv)" in source
    return flags, takes_overrides


def sweep_cover(overrides: list[str]) -> list[list[str]]:
    """Points of a `-m` command such that each value of each swept key (comma lists, an experiment's
    hydra.sweeper.params) is in one of them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ffnlab.config.compose import compose_config

    def swept(override: str) -> bool:
        return "," in override.partition("=")[2] and not override.partition("=")[2].startswith("[")

    fixed = [o for o in overrides if not swept(o)]
    params = {key: str(value) for key, value in
              (compose_config(fixed, with_hydra=True).hydra.sweeper.params or {}).items()}
    params |= {o.partition("=")[0]: o.partition("=")[2] for o in overrides if swept(o)}
    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    axes = [[f"{o.key_or_group}={v}" for v in (o.sweep_string_iterator() if o.is_sweep_override()
                                               else [o.get_value_element_as_str()])] for o in parsed]
    width = max((len(axis) for axis in axes), default=1)
    return [[*fixed, *(axis[i % len(axis)] for axis in axes)] for i in range(width)]


@cache
def check_point(point: tuple[str, ...]) -> None:
    from ffnlab.config.compose import compose_config
    from ffnlab.config.validate import validate

    validate(compose_config(list(point), with_hydra=True))


def check(program: str, words: list[str]) -> None:
    """Raise what train.py / the script would say about these arguments before doing any work."""
    from ffnlab.runs import secrets
    from ffnlab.runs import sweep

    flags = [w for w in words if w.startswith("-")]
    overrides = [w for w in words if not w.startswith("-") and OVERRIDE.match(w)]
    if program == "train.py":
        unknown = [f for f in flags if f not in ("-m", "--multirun")]
        assert not unknown, f"train.py takes no flag {unknown}"
        assert secrets.take(overrides) == overrides, "a secret on the command line"
        problem = sweep.unswept_study(words)
        assert problem is None, problem
        multirun = bool(flags)
    else:
        known, takes_overrides = script_flags(program)
        unknown = [f.partition("=")[0] for f in flags if f.partition("=")[0] not in known | {"-h", "--help"}]
        assert not unknown, f"{program} has no flag {unknown}; it has {sorted(known)}"
        if not takes_overrides:  # a positional path such as outputs/<study>/ffn=swiglu,seed=0 is not an override
            overrides = [o for o in overrides if "/" not in o.partition("=")[0]]
        assert takes_overrides or not overrides, f"{program} takes no Hydra overrides: {overrides}"
        multirun = program == "scripts/params.py"  # params.py costs the whole study
        if not takes_overrides:
            return
    for point in sweep_cover(overrides) if multirun else [overrides]:
        check_point(tuple(point))


COMMANDS = written_commands()


def test_the_docs_hold_the_commands_this_test_reads():
    programs = {program for _, program, _ in COMMANDS}
    assert {"train.py", "scripts/params.py", "scripts/sample.py", "scripts/prepare_data.py"} <= programs
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("where, program, words", COMMANDS,
                         ids=[f"{where}:{program} {' '.join(words)}"[:120] for where, program, words in COMMANDS])
def test_every_written_command_runs_as_written(where, program, words):
    written = " ".join([program, *words])
    if written in FAILS_ON_PURPOSE:
        with pytest.raises(Exception) as error:
            check(program, words)
        assert FAILS_ON_PURPOSE[written] in str(error.value)
        return
    try:
        check(program, words)
    except Exception as error:  # noqa: BLE001 - the test's message: which command, which line of the docs
        from ffnlab.config.errors import one_line

        pytest.fail(f"{where}: `python {written}` does not run as written: {type(error).__name__}: "
                    f"{one_line(error)}")
