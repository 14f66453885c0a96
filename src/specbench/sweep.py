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

The sweep's own ``status`` and ``finished`` are written when the sweep process exits, however
it ends: Hydra skips ``on_multirun_end`` when a job failed, so an ``atexit`` hook does it
(``failed`` if a job failed, ``interrupted`` with the interrupted job marked so, else
``completed``).

Jobs may run one after the other (Hydra's basic launcher, the default) or at once, each in its
own process (``hydra/launcher=local``, ``submitit_local``, ``slurm``: the submitit launcher).
Every read-modify-write of sweep.json holds ``<sweep dir>/.sweep.json.lock`` (an OS lock,
released if the process dies) and replaces the file atomically, so concurrent jobs never lose
each other's entries and a reader never sees half a file. ``on_multirun_start`` and the final
status run in the launching process; ``on_job_start``/``on_job_end`` run in the job's process
(a submitit job is a pickled copy of this callback), and the launcher returns only once every
job has ended, so the final status sees every job's record. A job launched as several processes
(``torchrun``, or ``tasks_per_node`` > 1 under submitit/srun) records itself from its rank-0
process only (``RANK``, else ``SLURM_PROCID``, else submitit's local rank); so does a sweep whose
launching command itself runs as several processes (``torchrun -m specbench -m ...``).

Hydra instantiates every ``hydra.callbacks`` entry, that is, calls its ``_target_`` with its
arguments, before any job starts. Only the callbacks in ``ALLOWED_CALLBACKS`` are accepted
(``check_callbacks``, ``check_callback_overrides``); see docs/security.md.
"""

from __future__ import annotations

import atexit
import math
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from specbench.config import with_renamed_sections
from specbench.errors import UserError
from specbench.io import file_lock, read_json, write_json
from specbench.log import get_logger, process_rank  # noqa: F401 - process_rank: sweep API

log = get_logger(__name__)

SWEEP_FILE = "sweep.json"
SWEEP_LOCK = ".sweep.json.lock"  # held for every read-modify-write of sweep.json
# Settings that never change a run's files: a completed run recorded with other values of these
# is still the same run (a sweep re-run with trainer.resume=true skips its completed jobs).
RERUN_KEYS = {"": {"force", "objective"}, "trainer": {"resume", "progress"}}
# The hydra.callbacks targets a run may instantiate: specbench's own and Hydra's shipped ones.
ALLOWED_CALLBACKS = {
    "specbench.sweep.SweepRecorder",
    "hydra.experimental.callbacks.LogJobReturnCallback",
    "hydra.experimental.callbacks.PickleJobInfoCallback",
}


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get()


class SweepRecorder(Callback):
    """Writes ``sweep.json``; see the module docstring."""

    def __init__(self) -> None:
        # Hydra builds the callbacks in order, this one (conf/config.yaml) first: refuse
        # command-line callbacks here, before the others are instantiated.
        check_callback_overrides(sys.argv[1:])

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if process_rank() != 0:  # torchrun -m specbench -m ...: every rank runs the sweeper
            return
        root = Path(config.hydra.sweep.dir)
        root.mkdir(parents=True, exist_ok=True)
        params = config.hydra.sweeper.get("params")
        with _locked(root):
            state = _read(root)
            state.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                         finished=None, sweep_overrides=list(config.hydra.overrides.task),
                         sweeper_params=OmegaConf.to_container(params) if params else {},
                         jobs_total=jobs_total(config.hydra), note=None)
            state.setdefault("jobs", [])
            write_json(root / SWEEP_FILE, state)
        atexit.register(finish_sweep, root)  # Hydra skips on_multirun_end after a failed job

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hc = _hydra()
        if hc.mode is None or hc.mode.name != "MULTIRUN" or process_rank() != 0:
            return
        self._t0 = time.time()
        root = Path(hc.sweep.dir)
        total = _read(root).get("jobs_total") or "?"
        log.info(f"job {hc.job.num + 1}/{total}: {' '.join(hc.overrides.task)}")
        _update_job(root, _job_entry(hc, status="running"))

    def on_job_end(self, config: DictConfig, job_return, **kwargs: Any) -> None:
        hc = _hydra()
        if hc.mode is None or hc.mode.name != "MULTIRUN" or process_rank() != 0:
            return
        t0 = getattr(self, "_t0", time.time())
        entry = _job_entry(hc, status="completed")
        entry["wall_time_s"] = round(time.time() - t0, 1)
        summary = Path(hc.sweep.dir) / entry["dir"] / "summary.json"
        if job_return.status.name == "FAILED":
            err = job_return._return_value
            entry.update(status="failed", error=f"{type(err).__name__}: {err}")
        else:
            value = job_return._return_value
            # a skipped job returns {"skipped": True} or leaves the earlier summary untouched
            if (isinstance(value, dict) and value.get("skipped")) or (
                    summary.is_file() and summary.stat().st_mtime < t0):
                entry["status"] = "skipped"
                entry["note"] = "completed earlier with the same config (force=true re-runs it)"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                entry["objective"] = value
        if summary.is_file():
            s = read_json(summary, "The job's run left a damaged summary.json; re-run the job.")
            entry.update(algorithm=s.get("algorithm"), fingerprint=s.get("fingerprint"),
                         run_status=s.get("status"))
        _update_job(Path(hc.sweep.dir), entry)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if process_rank() != 0:
            return
        atexit.unregister(finish_sweep)
        finish_sweep(Path(config.hydra.sweep.dir), at_exit=False)


def finish_sweep(root: Path, at_exit: bool = True) -> None:
    """Record the sweep's final status. At exit (Hydra skipped ``on_multirun_end``: a job
    failed, or the sweeper stopped), a job still ``running`` was interrupted, and so was the
    sweep if fewer than ``jobs_total`` of its jobs ran."""
    if not (root / SWEEP_FILE).is_file():
        return
    with _locked(root):
        state = _read(root)
        if state:
            _finish(root, state, at_exit)


def _finish(root: Path, state: dict, at_exit: bool) -> None:
    jobs = state.get("jobs", [])
    for job in jobs:
        if at_exit and job.get("status") == "running":
            job.update(status="interrupted", error="the sweep stopped during this job")
    ran = [j for j in jobs if j.get("sweep_started") == state.get("started")
           and j.get("status") != "running"]
    statuses = {j.get("status") for j in jobs}
    total = state.get("jobs_total")
    stopped = at_exit and total is not None and len(ran) < total
    if stopped:
        state["note"] = f"the sweep stopped after {len(ran)} of its {total} jobs"
    state.update(status="interrupted" if stopped or "interrupted" in statuses
                 else "failed" if "failed" in statuses else "completed",
                 finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(root / SWEEP_FILE, state)


def jobs_total(hydra_cfg: DictConfig) -> int | None:
    """The number of jobs of this sweep: Optuna's ``n_trials``, or the size of the basic
    sweeper's grid (``hydra.sweeper.params`` and the command line's sweeps); None if unknown."""
    sweeper = hydra_cfg.sweeper
    if sweeper.get("n_trials") is not None:
        return int(sweeper.n_trials)
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()] + list(hydra_cfg.overrides.task)
    try:
        sizes = {}
        for o in OverridesParser.create().parse_overrides(args):
            sizes[o.get_key_element()] = (len(list(o.sweep_string_iterator()))
                                          if o.is_sweep_override() else 1)
    except Exception:  # a sweep the basic grid does not describe (glob, interval, ...)
        return None
    return math.prod(sizes.values())


def objective_value(cfg: DictConfig, summary: dict) -> float:
    """The number a sweeper optimises: ``cfg.objective``, a dotted path into ``summary``
    (summary.json), e.g. ``eval_split.tau_sim``; a list entry by its index
    (``eval_split.top1.0``). NaN when the run recorded no value (Optuna then counts the trial
    as failed)."""
    path = str(cfg.objective)
    value: Any = summary
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise UserError(f"objective={path}: the run's summary.json has no such entry. "
                            "Name a number of summary.json with a dotted path, e.g. "
                            "objective=eval_split.tau_sim or objective=eval_split.loss; its "
                            f"numbers are: {', '.join(_numbers(summary)[:40])}.")
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"objective={path} is {type(value).__name__}, not a number, in the "
                        f"run's summary.json; name one of: {', '.join(_numbers(summary)[:40])}.")
    return float(value)


def _numbers(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _numbers(v, f"{prefix}{k}.")]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [prefix[:-1]]
    return []


def check_callbacks(hydra_cfg: DictConfig) -> None:
    """Refuse a ``hydra.callbacks`` entry whose ``_target_`` is not in ``ALLOWED_CALLBACKS``."""
    callbacks = OmegaConf.to_container(hydra_cfg.get("callbacks") or {}, resolve=False)
    _check_targets({name: (c or {}).get("_target_") if isinstance(c, dict) else c
                    for name, c in callbacks.items()})


def check_callback_overrides(args: list[str]) -> None:
    """Refuse command-line overrides that add or retarget a ``hydra.callbacks`` entry to a
    target outside ``ALLOWED_CALLBACKS`` (``+hydra.callbacks.x._target_=...``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    targets: dict[str, Any] = {}
    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "hydra.callbacks" not in arg.split("=", 1)[0]:
            continue
        try:
            o = parser.parse_override(arg)
        except Exception:
            continue  # Hydra reports it
        if o.is_delete():
            continue
        key, value = o.key_or_group, o.value()
        parts = key.split(".")
        if ".".join(parts[:2]) != "hydra.callbacks":
            continue
        if len(parts) == 2 and isinstance(value, dict):  # hydra.callbacks={name: {...}}
            targets.update({n: (c or {}).get("_target_") if isinstance(c, dict) else c
                            for n, c in value.items()})
        elif len(parts) == 3:  # hydra.callbacks.name={_target_: ...}
            targets[parts[2]] = value.get("_target_") if isinstance(value, dict) else value
        elif len(parts) == 4 and parts[3] == "_target_":
            targets[parts[2]] = value
    _check_targets(targets)


def _check_targets(targets: dict[str, Any]) -> None:
    for name, target in targets.items():
        if target is not None and str(target) not in ALLOWED_CALLBACKS:
            raise UserError(
                f"hydra.callbacks.{name}._target_={target} is not an allowed callback: Hydra "
                "would call it before the run starts. Allowed: "
                f"{', '.join(sorted(ALLOWED_CALLBACKS))}. Drop that override (see "
                "docs/security.md).")


def _locked(root: Path):
    """The sweep's lock: held around every read-modify-write of sweep.json."""
    return file_lock(root / SWEEP_LOCK)


def _read(root: Path) -> dict:
    path = root / SWEEP_FILE
    return read_json(path, "Move it away (the sweep then starts a new record there) or give "
                           "the sweep another hydra.sweep.dir.") if path.is_file() else {}


def _job_entry(hc, status: str) -> dict:
    """``dir`` is relative to the sweep root when it lies below it (the usual case)."""
    out, root = Path(hc.runtime.output_dir).resolve(), Path(hc.sweep.dir).resolve()
    rel = out.relative_to(root).as_posix() if out.is_relative_to(root) else str(out)
    return {"num": hc.job.num, "overrides": list(hc.overrides.task), "dir": rel,
            "status": status, "error": None}


def _update_job(root: Path, entry: dict) -> None:
    """Put ``entry`` in sweep.json in place of the job with the same ``dir`` (read, update and
    atomic rewrite under the sweep's lock: jobs of a parallel launcher may do it at once)."""
    with _locked(root):
        state = _read(root)
        entry["sweep_started"] = state.get("started")  # which run of the sweep last ran it
        jobs = [j for j in state.get("jobs", []) if j.get("dir") != entry["dir"]]
        jobs.append(entry)
        state["jobs"] = sorted(jobs, key=lambda j: j.get("num", 0))
        if state.get("status") == "completed" or state.get("status") == "failed":
            state["status"] = "running"  # a re-run of a finished sweep
        write_json(root / SWEEP_FILE, state)


def already_completed(run_dir: Path, resolved: dict) -> bool:
    """True if ``run_dir`` holds a completed run (and its evaluation, when asked for) whose
    recorded config equals ``resolved``, apart from ``RERUN_KEYS``."""
    summary, config = run_dir / "summary.json", run_dir / "config.json"
    if not (summary.is_file() and config.is_file()):
        return False
    hint = (f"{run_dir} holds an earlier run with a damaged record: move that directory "
            "away (or give this run another hydra.run.dir) to run it again.")
    if read_json(summary, hint).get("status") != "completed":
        return False
    saved = with_renamed_sections(read_json(config, hint))  # eval: recorded before the rename
    if _without_rerun_keys(saved) != _without_rerun_keys(resolved):
        return False
    return not resolved.get("decode", {}).get("enabled") or (run_dir / "eval.json").is_file()


def _without_rerun_keys(config: dict) -> dict:
    out = {k: v for k, v in config.items() if k not in RERUN_KEYS[""]}
    for section, keys in RERUN_KEYS.items():
        if section and isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


def move_aside(run_dir: Path) -> Path | None:
    """Move an earlier run's files into ``run_dir/previous-N/`` (``force=true``), leaving
    Hydra's own ``.hydra/`` and log of this job in place; returns the folder, or None when
    there was nothing to move."""
    earlier = [e for e in run_dir.iterdir() if e.name != ".hydra" and e.suffix != ".log"
               and not e.name.startswith(("previous-", ".specbench.lock"))]  # the lock stays
    if not earlier:
        return None
    n = 1
    while (aside := run_dir / f"previous-{n}").exists():
        n += 1
    aside.mkdir()
    for entry in earlier:
        entry.rename(aside / entry.name)
    return aside
