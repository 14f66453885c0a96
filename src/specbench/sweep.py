"""Multirun bookkeeping: ``sweep.json`` at the sweep root, and skipping jobs already done.

A Hydra callback (registered in ``conf/config.yaml``) records every job of a ``-m`` sweep in
``<hydra.sweep.dir>/sweep.json``: its number, overrides, run directory, status
(``running``, ``completed``, ``skipped``, ``failed`` with the error) and wall time. The file is
rewritten atomically after each job, so it is current even if the sweep is killed.

A failed job does not stop the others: in a multirun, ``python -m specbench`` raises the error
to Hydra, which records it and goes on with the next job (Hydra's basic sweeper then exits
non-zero once every job has run).

Re-running a sweep into the same directory (``hydra.sweep.dir=...``; the experiment presets fix
it) skips every job whose run directory already holds a completed run with the same config.
``force=true`` re-runs them: the old run's files are moved into ``<run dir>/previous-N/``,
never deleted or overwritten.

Jobs are expected to run one after the other (Hydra's basic launcher, the default): sweep.json
is read, updated and atomically replaced by each job, which parallel launchers could race on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from specbench.checkpoint import write_json

SWEEP_FILE = "sweep.json"


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get()


class SweepRecorder(Callback):
    """Writes ``sweep.json``; see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(config.hydra.sweep.dir)
        root.mkdir(parents=True, exist_ok=True)
        state = _read(root)
        params = config.hydra.sweeper.get("params")
        state.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                     finished=None, sweep_overrides=list(config.hydra.overrides.task),
                     sweeper_params=OmegaConf.to_container(params) if params else {})
        state.setdefault("jobs", [])
        write_json(root / SWEEP_FILE, state)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hc = _hydra()
        if hc.mode is None or hc.mode.name != "MULTIRUN":
            return
        self._t0 = time.time()
        _update_job(Path(hc.sweep.dir), _job_entry(hc, status="running"))

    def on_job_end(self, config: DictConfig, job_return, **kwargs: Any) -> None:
        hc = _hydra()
        if hc.mode is None or hc.mode.name != "MULTIRUN":
            return
        entry = _job_entry(hc, status="completed")
        entry["wall_time_s"] = round(time.time() - getattr(self, "_t0", time.time()), 1)
        if job_return.status.name == "FAILED":
            err = job_return._return_value
            entry.update(status="failed", error=f"{type(err).__name__}: {err}")
        else:
            value = job_return._return_value
            if isinstance(value, dict) and value.get("skipped"):
                entry["status"] = "skipped"
                entry["note"] = "completed earlier with the same config (force=true re-runs it)"
        summary = Path(hc.sweep.dir) / entry["dir"] / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            entry.update(algorithm=s.get("algorithm"), fingerprint=s.get("fingerprint"),
                         run_status=s.get("status"))
        _update_job(Path(hc.sweep.dir), entry)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(config.hydra.sweep.dir)
        state = _read(root)
        jobs = state.get("jobs", [])
        state.update(status="failed" if any(j["status"] == "failed" for j in jobs)
                     else "completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        write_json(root / SWEEP_FILE, state)


def _read(root: Path) -> dict:
    path = root / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _job_entry(hc, status: str) -> dict:
    """``dir`` is relative to the sweep root when it lies below it (the usual case)."""
    out, root = Path(hc.runtime.output_dir).resolve(), Path(hc.sweep.dir).resolve()
    rel = out.relative_to(root).as_posix() if out.is_relative_to(root) else str(out)
    return {"num": hc.job.num, "overrides": list(hc.overrides.task), "dir": rel,
            "status": status, "error": None}


def _update_job(root: Path, entry: dict) -> None:
    state = _read(root)
    jobs = [j for j in state.get("jobs", []) if j.get("dir") != entry["dir"]]
    jobs.append(entry)
    state["jobs"] = sorted(jobs, key=lambda j: j.get("num", 0))
    if state.get("status") == "completed" or state.get("status") == "failed":
        state["status"] = "running"  # a re-run of a finished sweep
    write_json(root / SWEEP_FILE, state)


def already_completed(run_dir: Path, resolved: dict) -> bool:
    """True if ``run_dir`` holds a completed run (and its evaluation, when asked for) whose
    recorded config equals ``resolved``."""
    summary, config = run_dir / "summary.json", run_dir / "config.json"
    if not (summary.is_file() and config.is_file()):
        return False
    if json.loads(summary.read_text()).get("status") != "completed":
        return False
    saved = json.loads(config.read_text())
    strip = lambda c: {k: v for k, v in c.items() if k != "force"}  # noqa: E731
    if strip(saved) != strip(resolved):
        return False
    return not resolved.get("eval", {}).get("enabled") or (run_dir / "eval.json").is_file()


def move_aside(run_dir: Path) -> Path | None:
    """Move an earlier run's files into ``run_dir/previous-N/`` (``force=true``), leaving
    Hydra's own ``.hydra/`` and log of this job in place; returns the folder, or None when
    there was nothing to move."""
    earlier = [e for e in run_dir.iterdir() if e.name != ".hydra" and e.suffix != ".log"
               and not e.name.startswith("previous-")]
    if not earlier:
        return None
    n = 1
    while (aside := run_dir / f"previous-{n}").exists():
        n += 1
    aside.mkdir()
    for entry in earlier:
        entry.rename(aside / entry.name)
    return aside
