"""Every bad input of ``tests/bad_inputs.py`` gives a clear message naming the setting, at the
stage it should, in under 10 s; ``docs/errors.md`` is the table of the same rows.

    .venv/bin/python -m tests.test_errors_doc --write   # run every row, rewrite docs/errors.md
    .venv/bin/python -m tests.test_errors_doc           # run every row, print what happened

A row marked with an ``issue`` (a traceback, a misleading or late message, an input accepted
silently) is an expected failure (strict) until src/ is fixed; then drop its ``issue`` and
rewrite the doc (``--write``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from .bad_inputs import ISSUE_KINDS, ROWS, Row
from .conftest import tiny_overrides, write_conversations

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
# every run row: the tiny random target, 48 conversations, 2 steps, no evaluation
BASE_RUN_EXTRA = ["decode.enabled=false", "trainer.max_steps=2"]


@dataclass
class Outcome:
    result: str  # error (a UserError, Hydra's message or exit status 2), traceback, accepted, ok
    stage: str  # compose, preflight, run start, target load, after target load, after training,
    #             CLI, never
    message: str
    seconds: float


# ---------------------------------------------------------------- shared, built once per session
class Context:
    """Expensive inputs (a trained run, an interrupted run, a saved tiny model), built lazily."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, Path] = {}

    def warm(self) -> Context:
        """Import what the rows use and build the tiny target once, so that a row's time is
        its own work, not Python's first imports (``app`` rows show a whole command's)."""
        import specbench.__main__  # noqa: F401
        import specbench.evaluate  # noqa: F401
        import specbench.export  # noqa: F401
        import specbench.trainer  # noqa: F401
        from specbench.config import compose
        from specbench.target import load_target

        with contextlib.redirect_stderr(io.StringIO()):
            load_target(compose(["model=tiny-llama"]).model)
        return self

    def get(self, name: str) -> Path:
        if name not in self._cache:
            self._cache[name] = getattr(self, f"_make_{name}")()
        return self._cache[name]

    def _make_convs(self) -> Path:
        return write_conversations(self.root / "convs.jsonl")

    def _train(self, name: str, extra: list[str], stop=None) -> Path:
        from specbench.config import compose
        from specbench.trainer import train

        run = self.root / name
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            train(compose(tiny_overrides(self.get("convs")) + extra), run, stop_after_steps=stop)
        return run

    def _make_run(self) -> Path:
        return self._train("done", BASE_RUN_EXTRA)

    def _make_partial(self) -> Path:
        return self._train("partial", BASE_RUN_EXTRA, stop=1)

    def _make_local(self) -> Path:
        from specbench.config import compose
        from specbench.target import load_target

        target = load_target(compose(["model=tiny-llama"]).model)
        d = self.root / "local"
        with contextlib.redirect_stderr(io.StringIO()):  # a progress bar
            target.model.save_pretrained(d)
            target.tokenizer.save_pretrained(d)
        return d

    def _without(self, name: str, keep) -> Path:
        d = self.root / name
        d.mkdir()
        for f in self.get("local").iterdir():
            if keep(f.name):
                shutil.copy(f, d / f.name)
        return d

    def _make_local_notok(self) -> Path:
        return self._without("local_notok", lambda n: not n.startswith(("tokenizer",
                                                                        "special_tokens")))

    def _make_local_noconfig(self) -> Path:
        return self._without("local_noconfig", lambda n: n != "config.json")


PLACEHOLDERS = ("run", "partial", "local", "local_notok", "local_noconfig")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _materialise(row: Row, ctx: Context, where: Path) -> dict:
    """The row's files and placeholders; returns the values for ``str.format``."""
    tmp = where / "t"
    tmp.mkdir(parents=True)
    for name, content in row.files.items():
        p = tmp / name
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    values = {"tmp": str(tmp), "convs": str(ctx.get("convs"))}
    text = " ".join(row.args)
    for name in PLACEHOLDERS:
        if "{" + name + "}" in text:
            src = ctx.get(name)
            values[name] = str(_copy(src, where / name) if name in ("run", "partial") else src)
    return values


# ---------------------------------------------------------------- prepare steps (row.prepare)
@contextlib.contextmanager
def _prepared(row: Row, ctx: Context, where: Path, values: dict):
    """Apply the row's ``prepare`` step; yields the run directory for ``run`` rows."""
    run_dir = where / "out"
    p = row.prepare
    with contextlib.ExitStack() as stack:
        if p == "no_disk":
            usage = shutil.disk_usage("/")
            fake = type(usage)(usage.total, usage.total - 1000, 1000)
            stack.enter_context(mock.patch("shutil.disk_usage", return_value=fake))
        elif p == "run_is_partial":
            _copy(ctx.get("partial"), run_dir)
        elif p == "partial_weights_garbage":
            _copy(ctx.get("partial"), run_dir)
            step = (run_dir / "checkpoints" / "latest").read_text().strip()
            for f in (run_dir / "checkpoints" / step).glob("*.safetensors"):
                f.unlink()
                f.write_bytes(b"garbage" * 10)
        elif p == "run_locked":
            from filelock import FileLock

            run_dir.mkdir()
            lock = FileLock(str(run_dir / ".specbench.lock"))
            lock.acquire(timeout=0)
            stack.callback(lock.release)
        elif p == "run_is_file":
            run_dir.write_text("not a directory")
        elif p in ("config_garbage", "summary_garbage"):
            name = p.split("_")[0] + ".json"
            Path(values["run"], name).write_text('{"cut off')
        elif p == "eval_label_exists":
            Path(values["run"], "eval-x.json").write_text("{}")
        elif p == "exported":
            from specbench.export import export_run

            export_run(values["run"], "vllm")
        elif p:
            raise ValueError(f"unknown prepare step {p!r}")
        yield run_dir


# ---------------------------------------------------------------- running one row
def _hydra_message(err: BaseException) -> str | None:
    """Hydra's and OmegaConf's own errors are printed by Hydra without a traceback: their text
    (with the OmegaConf cause, as Hydra prints it); None for any other exception."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, (HydraException, OmegaConfBaseException)):
        cause = err.__cause__
        return str(err) + (f"\n{cause}" if isinstance(cause, OmegaConfBaseException) else "")
    return None


def _algorithm_choice(args: list[str]) -> str:
    picked = [a.split("=", 1)[1] for a in args if a.startswith("algorithm=")]
    return picked[-1] if picked else "medusa"


def _merge(base: list[str], extra: list[str]) -> list[str]:
    """``base`` overrides with ``extra`` on top (a key given twice keeps the later value)."""
    merged: dict[str, str] = {}
    for o in base + extra:
        key = o.split("=", 1)[0]
        merged[key] = o
    return list(merged.values())


def _run_config(row: Row, args: list[str]) -> tuple[str, str, str]:
    from specbench.__main__ import preflight
    from specbench.config import compose

    stage = "compose"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cfg = compose(args)
            stage = "preflight"
            preflight(cfg, _algorithm_choice(args))
        except Exception as err:  # noqa: BLE001 - classified below
            return _classify(err, stage)
    if row.warn:  # a warning naming the setting, before anything is loaded
        said = [str(w.message) for w in caught if row.expect in str(w.message)]
        if said:
            return "warning", "preflight", said[0]
    return "accepted", "never", ""


def _classify(err: BaseException, stage: str) -> tuple[str, str, str]:
    from specbench.errors import UserError

    if isinstance(err, UserError):
        return "error", stage, str(err)
    hydra = _hydra_message(err)
    if hydra is not None and stage == "compose":
        return "error", stage, hydra
    return "traceback", stage, "".join(traceback.format_exception_only(type(err), err)).strip()


def _run_app_inprocess(row: Row, args: list[str], run_dir: Path) -> tuple[str, str, str]:
    """``python -m specbench``'s flow (``__main__._run``) with its stages watched."""
    import specbench.trainer as trainer_mod
    from specbench import __main__ as app
    from specbench.config import compose

    stage = ["compose"]
    real_load, real_train = trainer_mod.load_target, trainer_mod.train

    def load(*a, **k):
        stage[0] = "target load"
        out = real_load(*a, **k)
        stage[0] = "after target load"
        return out

    def train(cfg, run_dir, stop_after_steps=None, after=None):
        def done(tracker):
            stage[0] = "after training"
            if after is not None:
                after(tracker)

        stage[0] = "run start"
        out = real_train(cfg, run_dir, stop_after_steps, done)
        stage[0] = "after training"
        return out

    def preflight(cfg, choice=None):
        stage[0] = "preflight"
        real_preflight(cfg, choice)
        stage[0] = "run start"

    real_preflight = app.preflight
    hc = SimpleNamespace(runtime=SimpleNamespace(choices={"algorithm": _algorithm_choice(args)}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cfg = compose(args)
            with mock.patch.object(trainer_mod, "load_target", load), \
                    mock.patch.object(trainer_mod, "train", train), \
                    mock.patch.object(app, "preflight", preflight):
                stage[0] = "preflight"
                app._run(cfg, hc, run_dir, multirun=False)
        except SystemExit as err:
            return "traceback", stage[0], f"SystemExit({err.code})"
        except Exception as err:  # noqa: BLE001
            return _classify(err, stage[0])
    if row.warn:  # a warning naming the setting, at run start, and the run goes on
        said = [str(w.message) for w in caught if row.expect in str(w.message)]
        if said:
            return "warning", "run start", said[0]
    return "accepted", "never", ""


def _run_cli(row: Row, args: list[str], cwd: Path) -> tuple[str, str, str]:
    """``python -m specbench.<tool> args``, in-process (``runpy``, as ``-m`` runs it), in
    ``cwd`` (tools that write next to the working directory write there)."""
    out, err = io.StringIO(), io.StringIO()
    here, argv = os.getcwd(), sys.argv
    rc = 0
    try:
        os.chdir(cwd)
        sys.argv = [f"python -m specbench.{row.tool}", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            # runpy's note that the module was imported before (by an earlier row)
            warnings.filterwarnings("ignore", "'specbench", RuntimeWarning)
            runpy.run_module(f"specbench.{row.tool}", run_name="__main__", alter_sys=False)
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # noqa: BLE001 - an uncaught exception is a traceback
        return "traceback", "CLI", "".join(traceback.format_exception_only(type(e), e)).strip()
    finally:
        os.chdir(here)
        sys.argv = argv
    return _cli_result(row, rc, out.getvalue(), err.getvalue())


def _cli_result(row: Row, rc, stdout: str, stderr: str) -> tuple[str, str, str]:
    if "Traceback" in stderr:
        return "traceback", "CLI", stderr.strip().splitlines()[-1]
    if row.ok:
        return ("ok" if rc in (0, None) else "traceback"), "CLI", stdout.strip()[:300]
    if rc in (0, None):
        return "accepted", "never", (stdout + stderr).strip()[-300:]
    msg = stderr.strip()
    if "error:" not in msg:
        return "traceback", "CLI", msg
    if msg.startswith("usage:"):  # argparse: the usage lines, then "prog: error: ..."
        msg = msg[msg.index("error:"):]
    return "error", "CLI", msg


def _run_app(row: Row, args: list[str], cwd: Path) -> tuple[str, str, str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **row.env}
    env.pop("HYDRA_FULL_ERROR")
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args = [*args, f"hydra.run.dir={cwd / 'out'}"]
    p = subprocess.run([sys.executable, "-m", "specbench", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120, env=env)
    if "Traceback" in p.stderr:  # the exception's line (Hydra adds a hint after it)
        last = [ln for ln in p.stderr.splitlines() if ln.strip()
                and not ln.startswith("Set the environment variable HYDRA_FULL_ERROR")]
        return "traceback", "app", last[-1]
    if p.returncode == 0:
        return "accepted", "never", ""
    stage = "preflight" if "error:" in p.stderr else "compose"
    return "error", stage, p.stderr.strip().removeprefix("error:").strip()


def run_row(row: Row, ctx: Context, where: Path) -> Outcome:
    """Run one row in its own directory ``where``; the message has ``where`` replaced by
    ``<tmp>``."""
    where.mkdir(parents=True, exist_ok=True)
    values = _materialise(row, ctx, where)
    args = [a.format(**values) for a in row.args]
    env = mock.patch.dict(os.environ, row.env)
    with _prepared(row, ctx, where, values) as run_dir, env:
        t0 = time.perf_counter()
        out = io.StringIO()
        if row.kind == "config":
            with contextlib.redirect_stdout(out):
                result = _run_config(row, args)
        elif row.kind == "run":
            base = [o for o in tiny_overrides(ctx.get("convs")) + BASE_RUN_EXTRA
                    if o.split("=", 1)[0] not in row.drop]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                result = _run_app_inprocess(row, _merge(base, args), run_dir)
        elif row.kind == "cli":
            result = _run_cli(row, args, where)
        elif row.kind == "app":
            result = _run_app(row, args, where)
        else:
            raise ValueError(row.kind)
        seconds = time.perf_counter() - t0
    status, stage, message = result
    message = message.replace(str(where), "<tmp>").replace(str(ctx.root), "<shared>")
    return Outcome(status, stage, message, seconds)


def check(row: Row, out: Outcome) -> None:
    """The assertions every row must pass (a row with an issue fails one of them)."""
    if row.ok:
        assert out.result == "ok", out
        assert row.expect in out.message, out.message
    else:
        want = "warning" if row.warn else "error"
        assert out.result == want, f"{out.result} at {out.stage}: {out.message}"
        assert "Traceback" not in out.message
        assert row.expect in out.message, out.message
        assert out.stage == row.when, f"caught at {out.stage}, expected {row.when}"
    assert out.seconds < row.limit_s, f"{out.seconds:.1f} s"


# ---------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Context(tmp_path_factory.mktemp("bad_inputs")).warm()


def _param(row: Row):
    marks = [pytest.mark.xfail(strict=True, reason=row.issue)] if row.issue else []
    return pytest.param(row, id=row.id, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_bad_input_gives_a_clear_message(row, ctx, tmp_path):
    check(row, run_row(row, ctx, tmp_path))


def test_rows_are_well_formed():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    for r in ROWS:
        assert r.kind in ("config", "run", "cli", "app"), r
        assert r.issue is None or r.issue.split(":")[0] in ISSUE_KINDS, r


def test_doc_is_current():
    """docs/errors.md lists every row, with its status and, for a clear row, where it is caught
    and a message holding the row's expected text (regenerate: python -m tests.test_errors_doc
    --write)."""
    documented = {(d["area"], d["input"]): d for d in parse_doc(DOC.read_text())}
    expected = {(r.area, r.input): r for r in ROWS}
    assert set(documented) == set(expected), (
        f"missing: {sorted(set(expected) - set(documented))[:5]}, "
        f"stale: {sorted(set(documented) - set(expected))[:5]}")
    for key, r in expected.items():
        d = documented[key]
        assert d["status"] == r.status, (key, d["status"], r.status)
        if r.status == "clear":
            assert d["caught"] == r.when, (key, d["caught"])
            assert _cell(r.expect) in d["message"] or len(d["message"]) >= MESSAGE_CHARS - 3, \
                (key, d["message"])
    assert counts_line(ROWS) in DOC.read_text()


# ---------------------------------------------------------------- docs/errors.md
MESSAGE_CHARS = 160
HEADER = "| input | message (start) | caught | time | status |"


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text


def _short(text: str) -> str:
    text = _cell(text)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + "..."


def counts(rows) -> dict:
    bad = [r for r in rows if not r.ok]
    c = {"tried": len(bad), "clear": sum(r.issue is None for r in bad)}
    for kind in ISSUE_KINDS:
        c[kind] = sum(bool(r.issue) and r.issue.startswith(kind) for r in bad)
    return c


def counts_line(rows) -> str:
    c = counts(rows)
    return ("Bad inputs tried: {tried}; clear: {clear}; late (after training): {late}; "
            "traceback: {traceback}; misleading: {misleading}; accepted silently: {silent}."
            ).format(**c)


def render(results: list[tuple[Row, Outcome]]) -> str:
    out = [
        "# Errors: every setting a user can get wrong",
        "",
        "Each row is a bad input, the start of the message specbench gives, where it is caught "
        "and how long it took on the 2-core development VM: from the start of the command's "
        "own work (compose, checks, model load), without Python's start-up and imports, which "
        "add 3-5 s to every command (the `python -m specbench` rows are whole commands, "
        "timed from the shell). Stages: *compose* (Hydra composes the config), "
        "*preflight* (`python -m specbench` checks before loading a model), *run start* (run "
        "directory, device), *target load*, *after target load* (data, tree settings, disk; "
        "before the first step), *after training*, *CLI* (the tool's own arguments). Status: "
        "*clear* (one paragraph naming the setting, no traceback), or an open problem: "
        "*traceback*, *misleading* (the message names the wrong thing), *late* (caught only "
        "after training), *silent* (accepted).",
        "",
        "Generated from `tests/bad_inputs.py` by `python -m tests.test_errors_doc --write`; "
        "`tests/test_errors_doc.py` runs every row (each must be clear, at its stage, in under "
        "10 s; the W&B row 30 s, W&B's own service start) and checks this file is current. `<tmp>` is a scratch directory; `{run}` a "
        "completed tiny run, `{partial}` an interrupted one.",
        "",
        counts_line([r for r, _ in results]),
        "",
    ]
    area = None
    for row, o in results:
        if row.area != area:
            area = row.area
            out += ["", f"## {area}", "", HEADER, "|---|---|---|---|---|"]
        msg = o.message if o.result != "accepted" else "(accepted)"
        msg = ("warning: " if o.result == "warning" else "") + msg
        out.append(f"| `{_cell(row.input)}` | {_short(msg)} | {o.stage} | {o.seconds:.1f} s | "
                   f"{row.status} |")
    issues = [(r, o) for r, o in results if r.issue]
    if issues:
        out += ["", "## Open problems", "", "| input | what happens |", "|---|---|"]
        out += [f"| `{_cell(r.input)}` | {_cell(r.issue)} |" for r, _ in issues]
    return "\n".join(out) + "\n"


def parse_doc(text: str) -> list[dict]:
    rows, area = [], None
    for line in text.splitlines():
        if line.startswith("## "):
            area = line[3:].strip()
        elif line.startswith("| `") and area != "Open problems":
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) == 5:
                rows.append({"area": area, "input": cells[0].strip("`").replace("\\|", "|"),
                             "message": cells[1], "caught": cells[2], "status": cells[4]})
    return rows


def main(argv: list[str]) -> int:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SPECBENCH_COMPILE", "0")
    only = [a for a in argv if not a.startswith("--")]
    results, failed = [], 0
    with tempfile.TemporaryDirectory() as root:
        ctx = Context(Path(root) / "shared")
        ctx.root.mkdir()
        ctx.warm()
        for i, row in enumerate(ROWS):
            if only and not any(s in row.id for s in only):
                continue
            o = run_row(row, ctx, Path(root) / f"row{i}")
            try:
                check(row, o)
                ok = True
            except AssertionError as err:
                ok = False
                why = str(err).splitlines()[0][:150]
            flag = ("ok  " if not row.issue else "XPASS") if ok else (
                "xfail" if row.issue else "FAIL")
            failed += flag in ("FAIL", "XPASS")
            print(f"{flag:5s} {o.seconds:5.1f}s {o.result:9s} {o.stage:17s} {row.id}"
                  + ("" if ok else f"\n        -> {why}"), flush=True)
            results.append((row, o))
    if "--write" in argv and not only:
        DOC.write_text(render(results))
        print(f"written {DOC}")
    print(counts_line([r for r, _ in results]), f"({failed} unexpected)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
