"""Every ``python -m specbench ...`` line of a code block in README.md, docs/*.md and
experiments/*.md composes and validates, as ``python -m specbench <args> --cfg job`` would print it.

Lines run in-process through ``specbench.config.compose`` (a subprocess per line is too slow on a
small machine); one line goes through a real ``python -m specbench ... --cfg job`` as well, so
the Hydra app's own config path (``pkg://specbench.conf``) and the ``+experiment=`` spelling are
covered. A ``-m`` sweep composes once per combination of its comma-separated values.

Skipped, on purpose: lines naming ``mlp-speculator`` / ``mlp_speculator``, the example algorithm
that docs/adding-an-algorithm.md walks through adding (it is not shipped). Paths in the lines
(``model.path=/models/...``, ``data.path=my_conversations.jsonl``) are kept as written: composing
and validating a config reads no file, so they need not exist.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from specbench.config import compose, validate

ROOT = Path(__file__).parents[1]
PREFIX = "python -m specbench "
SKIP = re.compile(r"mlp[-_]speculator")
FLAGS = {"-m", "--multirun"}


def doc_commands() -> list[tuple[str, str]]:
    """(``file:line``, command) for each ``python -m specbench ...`` line in a fenced block."""
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "experiments").glob("*.md"))]
    for path in files:
        in_block = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
            elif in_block and line.strip().startswith(PREFIX):
                found.append((f"{path.relative_to(ROOT)}:{number}", line.strip()))
    return found


def overrides_of(command: str) -> list[str]:
    """The command's overrides: comments, ``--cfg job``, ``-p KEY`` and the multirun flag
    dropped."""
    args = shlex.split(command[len(PREFIX):], comments=True)
    out, skip_next = [], False
    for a in args:
        if skip_next:
            skip_next = False
        elif a in ("--cfg", "-p", "--package"):
            skip_next = True
        elif a not in FLAGS:
            out.append(a)
    return out


def combinations(overrides: list[str]) -> list[list[str]]:
    """A sweep's jobs: one override list per combination of the comma-separated values."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(c) for c in itertools.product(*choices)]


COMMANDS = doc_commands()


def test_the_docs_have_commands():
    assert len(COMMANDS) >= 15, COMMANDS
    assert any("experiment=" in c for _, c in COMMANDS)


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_doc_command_composes_and_validates(where, command):
    if SKIP.search(command):
        pytest.skip("the example algorithm of docs/adding-an-algorithm.md (not shipped)")
    if "--help" in command.split():
        return  # specbench's own page, before Hydra: tests/test_config.py runs it
    if "hparams_search=" in command:
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper",
                            reason="needs the optuna extra (pip install -e '.[optuna]')")
    if "hydra/launcher=" in command:
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                            reason="needs the slurm extra (pip install -e '.[slurm]')")
    for job in combinations(overrides_of(command)):
        validate(compose(job))


def test_one_doc_command_through_the_real_app(tmp_path):
    """``python -m specbench experiment=medusa_vs_eagle3 --cfg job`` (README), from another
    directory: the app finds its configs in the package."""
    command = next(c for _, c in COMMANDS if "experiment=medusa_vs_eagle3" in c)
    proc = subprocess.run([sys.executable, "-m", "specbench", *overrides_of(command),
                           "--cfg", "job"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "algorithm:" in proc.stdout and "enabled: true" in proc.stdout
