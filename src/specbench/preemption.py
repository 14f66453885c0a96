"""Preemption: checkpoint on SIGTERM or SIGUSR1, and resume when the job comes back.

A scheduler stops a job with a signal before it kills it: SLURM sends SIGTERM on preemption or
``scancel`` (then SIGKILL after its grace time), and ``#SBATCH --signal=USR1@120`` sends SIGUSR1
to the job's tasks two minutes before the time limit (without ``B:``, which would signal only
the batch shell; ``hydra/launcher=slurm`` sets it); torchrun passes a SIGTERM it receives on to
every rank. While a run trains, specbench catches both signals: the optimizer step in progress
finishes, every rank agrees to stop, a checkpoint is written (atomically, as always), the run is
recorded with status ``preempted`` and the process exits with 128 + the signal's number. On
SIGUSR1 under SLURM the job also asks to be requeued (``scontrol requeue $SLURM_JOB_ID``); on
SIGTERM, SLURM requeues a preempted job itself when it was submitted with ``--requeue``.

A start in a run directory that holds checkpoints resumes from the newest one, without
``trainer.resume=true``, when the run was recorded as preempted or when SLURM says the job is a
requeued one (``SLURM_RESTART_COUNT`` > 0, and the checkpoint was written by this same
``SLURM_JOB_ID``). Every other start over existing checkpoints is still
refused, so nothing is overwritten by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from specbench.log import get_logger

log = get_logger(__name__)

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None))
                if s is not None)


class PreemptionGuard:
    """While entered, SIGTERM and SIGUSR1 set ``signum`` instead of ending the process; the
    training loop looks at it between optimizer steps. Outside the main thread (where Python
    cannot install handlers) it does nothing."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._catch)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _catch(self, signum, _frame) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning(f"received {signal.Signals(signum).name}: the run stops after this "
                        "optimizer step, with a checkpoint")

    @property
    def requested(self) -> bool:
        return self.signum is not None


def exit_code(signum: int) -> int:
    return 128 + int(signum)


def requeue() -> None:
    """Ask SLURM to run this job again (after SIGUSR1, the time-limit warning)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return
    if shutil.which("scontrol") is None:
        log.warning("SLURM_JOB_ID is set but scontrol is not on PATH: the job is not "
                    "requeued; resubmit it to resume.")
        return
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done.returncode == 0:
        log.info(f"SLURM job {job} requeued: it resumes from this checkpoint")
    else:
        log.warning(f"scontrol requeue {job} failed ({done.stderr.strip()[:200]}); resubmit "
                    "the job to resume.")


def resumes_automatically(run_dir: Path) -> str | None:
    """Why a start in ``run_dir`` (which holds checkpoints) continues the run by itself: it was
    preempted, or SLURM requeued this job. None: a plain start, refused as before."""
    summary = Path(run_dir) / "summary.json"
    try:
        status = json.loads(summary.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "preempted":
        return "the run was preempted"
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        restarts = 0
    job = os.environ.get("SLURM_JOB_ID")
    if restarts > 0 and job and checkpoint_job(run_dir) == job:
        return f"SLURM requeued this job (SLURM_RESTART_COUNT={restarts})"
    return None


def checkpoint_job(run_dir: Path) -> str | None:
    """The SLURM job id the newest checkpoint of ``run_dir`` records (None: none)."""
    from specbench.checkpoint import STATE, latest_checkpoint

    try:
        latest = latest_checkpoint(run_dir)
        return json.loads((latest / STATE).read_text()).get("slurm_job_id") if latest else None
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is refused later, by name
        return None
