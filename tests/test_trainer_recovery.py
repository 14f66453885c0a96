"""Issue 10: runs that diverge, die or collide lose nothing and report the truth.

Non-finite losses stop the run as failed; a locked run directory refuses a second process;
every state a kill leaves (mid-training, between the final checkpoint and publishing the
weights, during the post-training evaluation) is finished by one command; metrics.jsonl is the
same after a resume as without one, and survives a cut-off last line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from specbench.config import compose
from specbench.errors import UserError
from specbench.losses import linear_cross_entropy
from specbench.target import Features, Target
from specbench.trainer import TrainingDiverged, _size, train

from .conftest import tiny_overrides


def rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def comparable(rs):
    drop = {"train/tokens_per_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in rs]


def test_nan_features_stop_the_run_as_failed(tmp_path, conv_file, monkeypatch):
    real = Target.features
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        feats = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 3:  # the third micro batch: as if a cache shard were damaged
            nan = lambda t: None if t is None else torch.full_like(t, float("nan"))  # noqa: E731
            feats = Features(nan(feats.final_hidden), {i: nan(t) for i, t in feats.layers.items()})
        return feats

    monkeypatch.setattr(Target, "features", poisoned)
    run = tmp_path / "run"
    cfg = compose(tiny_overrides(conv_file, **{"trainer.max_steps": 6}))
    with pytest.raises(TrainingDiverged, match="step 3: the (loss|gradient norm) is not finite"):
        train(cfg, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "not finite" in summary["error"]
    assert summary["weights"] is None and not (run / "draft.safetensors").exists()
    assert summary["checklist"]["optimizer_steps_taken"] == 2


def test_nan_logits_are_never_hits():
    z = torch.full((4, 8), float("nan"))
    w = torch.randn(16, 8)
    _, top1, top5 = linear_cross_entropy(z, w, torch.zeros(4, dtype=torch.long))
    assert int(top1) == 0 and int(top5) == 0
    z = torch.randn(4, 8)
    _, top1, _ = linear_cross_entropy(z, w, (z @ w.T).argmax(-1))
    assert int(top1) == 4


def test_a_second_process_on_a_locked_run_dir_is_refused(tmp_path, conv_file):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from specbench import rundir\n"
         f"with rundir.hold({str(run)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.time()
        with pytest.raises(UserError, match=r"Another specbench process \(pid \d+\) is using"):
            train(compose(tiny_overrides(conv_file, **{"trainer.max_steps": 2})), run)
        assert time.time() - t0 < 10
        assert not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its process (kill -9 included): the directory is usable again
    assert train(compose(tiny_overrides(conv_file, **{"trainer.max_steps": 2})),
                 run)["status"] == "completed"


def test_killed_before_publishing_the_weights_is_finished_by_resume(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 4})
    run = tmp_path / "run"
    train(compose(over), run)
    weights = (run / "draft.safetensors").read_bytes()
    # what a kill between the final checkpoint and publishing leaves
    (run / "draft.safetensors").unlink()
    (run / "summary.json").unlink()
    with pytest.raises(UserError, match="trainer.resume=true"):
        train(compose(over), run)
    called = []
    s = train(compose(over + ["trainer.resume=true"]), run, after=lambda tr: called.append(1))
    assert s["status"] == "completed" and called == [1]
    assert (run / "draft.safetensors").read_bytes() == weights
    assert s["train"]["final_loss"] is not None and s["eval_split"]["tau_sim"] is not None
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4]


def test_killed_during_the_evaluation_is_finished_by_resume(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 3})
    run = tmp_path / "run"

    def dies(tracker):
        raise KeyboardInterrupt  # the process is stopped while evaluating

    with pytest.raises(KeyboardInterrupt):
        train(compose(over), run, after=dies)
    called = []
    s = train(compose(over + ["trainer.resume=true"]), run, after=lambda tr: called.append(1))
    assert s["status"] == "completed" and called == [1]


def test_metrics_rows_after_a_resume_equal_an_uninterrupted_run(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 8, "trainer.log_every": 3,
                                        "trainer.eval_every": 100})
    train(compose(over), tmp_path / "full")
    train(compose(over), tmp_path / "part", stop_after_steps=4)  # 4 is not a multiple of 3
    train(compose(over + ["trainer.resume=true"]), tmp_path / "part")
    assert comparable(rows(tmp_path / "part")) == comparable(rows(tmp_path / "full"))


def test_a_cut_off_last_metrics_line_does_not_stop_the_resume(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 4})
    run = tmp_path / "run"
    train(compose(over), run, stop_after_steps=2)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "train/lo')  # killed mid-write
    s = train(compose(over + ["trainer.resume=true"]), run)
    assert s["status"] == "completed"
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4]


def test_a_fresh_start_keeps_the_rows_of_a_dead_attempt_apart(tmp_path, conv_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "train/loss": 99.0}\n')
    train(compose(tiny_overrides(conv_file, **{"trainer.max_steps": 2})), run)
    assert [r["train/loss"] for r in rows(run) if "train/loss" in r][0] != 99.0
    assert "99.0" in (run / "metrics-abandoned-1.jsonl").read_text()


def test_sizes_in_messages_are_never_zero():
    assert _size(3_000) == "0.003 MB" and _size(45_000_000) == "45 MB"
    assert _size(2.5e9) == "2.50 GB" and _size(12) == "12 bytes"
