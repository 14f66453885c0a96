"""Preemption (SLURM's SIGTERM, the time-limit SIGUSR1, torchrun passing a SIGTERM on): the
run checkpoints after the step in progress, exits 128 + the signal, and the next start in the
run directory (a requeued job) resumes by itself and ends as an uninterrupted run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from . import campaign_util as cu
from .conftest import tiny_overrides, write_conversations
from .test_distributed import max_diff, ok, torchrun, wrapper


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_conversations(tmp_path_factory.mktemp("data") / "convs.jsonl", n=72)


def args(data, run: Path, **extra) -> list[str]:
    return tiny_overrides(data, **{"hydra.run.dir": run, "decode.enabled": "false",
                                   "trainer.global_batch_size": 8, **extra})


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    ok(cu.specbench(args(data, run)))
    return run


def latest(run: Path) -> str:
    return (run / "checkpoints" / "latest").read_text().strip()


def test_sigterm_checkpoints_and_the_next_start_resumes(data, reference, tmp_path):
    run = tmp_path / "run"
    # the 5th backward pass is in optimizer step 3 (two micro batches per step)
    stopped = cu.specbench(args(data, run), fault="signal", at=5)
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]
    assert "preempted (SIGTERM) after optimizer step 3" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert latest(run) == "step-0000003"
    assert cu.summary(run)["status"] == "preempted"
    assert not (run / "draft.safetensors").exists()
    again = cu.specbench(args(data, run))  # the requeued job: the same command, no flag
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the run was preempted: resuming from step-0000003" in again.stdout
    cu.assert_same_end_state(run, reference)


def test_sigusr1_requeues_the_slurm_job(data, tmp_path):
    """SIGUSR1 (``--signal=USR1@300``, hydra/launcher=slurm): checkpoint, then ``scontrol
    requeue``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol-calls"
    fake = bin_dir / "scontrol"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    run = tmp_path / "run"
    stopped = cu.specbench(args(data, run), fault="signal", at=3, CAMPAIGN_SIGNAL="USR1",
                           SLURM_JOB_ID="4242", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert stopped.returncode == 128 + 10, stopped.stderr[-3000:]
    assert latest(run) == "step-0000002"
    assert calls.read_text().split() == ["requeue", "4242"]


def test_a_requeued_job_resumes_after_a_hard_kill(data, reference, tmp_path):
    """SIGKILL (no time to checkpoint): a plain start is refused as before, and so is another
    SLURM job's start; the requeued job itself (same SLURM_JOB_ID, SLURM_RESTART_COUNT > 0)
    resumes from the last periodic checkpoint."""
    run = tmp_path / "run"
    a = args(data, run, **{"trainer.checkpoint_every": 2})
    assert cu.specbench(a, fault="step", at=7, SLURM_JOB_ID="77").returncode != 0  # step 4
    assert latest(run) == "step-0000002"
    refused = cu.specbench(a)
    assert refused.returncode == 2 and "already holds checkpoints" in refused.stderr
    other = cu.specbench(a, SLURM_RESTART_COUNT="1", SLURM_JOB_ID="78")
    assert other.returncode == 2 and "already holds checkpoints" in other.stderr
    again = cu.specbench(a, SLURM_RESTART_COUNT="1", SLURM_JOB_ID="77")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "SLURM requeued this job" in again.stdout
    cu.assert_same_end_state(run, reference)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_passes_sigterm_to_every_rank(data, reference, tmp_path):
    """SIGTERM to the torchrun agent (what a scheduler signals): it passes it on, both ranks
    stop after the same step with one checkpoint; the relaunched job finishes the run."""
    run = tmp_path / "run"
    a = args(data, run)
    stopped = torchrun(a, tmp_path, script=wrapper(tmp_path), CAMPAIGN_FAULT="signal",
                       CAMPAIGN_AT=3, CAMPAIGN_SIGNAL_TO="parent")
    assert stopped.returncode != 0
    s = cu.summary(run)
    assert s["status"] == "preempted", stopped.stderr[-3000:]
    step = int(latest(run).split("-")[1])
    assert 3 <= step < s["checklist"]["expected_optimizer_steps"]
    ok(torchrun(a, tmp_path))
    assert cu.summary(run)["status"] == "completed"
    assert max_diff(run, reference) <= 1e-6


def test_preempted_status_is_not_a_completed_run(data, tmp_path):
    """The sweep's skip logic never takes a preempted run for a finished one."""
    from specbench.sweep import already_completed

    run = tmp_path / "run"
    assert cu.specbench(args(data, run), fault="signal", at=3).returncode == 143
    resolved = json.loads((run / "config.json").read_text())
    assert not already_completed(run, resolved)


def test_a_signal_in_the_last_step_leaves_the_evaluation_to_the_resumed_run(data, reference,
                                                                          tmp_path):
    """The signal arrives in the last optimizer step: the final checkpoint and weights are
    written, the (long) decoding evaluation is not started; the next start finishes the run."""
    run = tmp_path / "run"
    total = cu.summary(reference)["checklist"]["expected_optimizer_steps"]
    stopped = cu.specbench(args(data, run), fault="signal", at=2 * total - 1)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert cu.summary(run)["status"] == "preempted"
    assert latest(run) == f"step-{total:07d}" and (run / "draft.safetensors").is_file()
    again = cu.specbench(args(data, run))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training is complete, finishing the run" in again.stdout
    cu.assert_same_end_state(run, reference)
