"""Atomic checkpoints, and tracking that survives a broken W&B."""

from __future__ import annotations

import json

import pytest
import torch

from specbench import checkpoint as ckpt
from specbench.config import compose
from specbench.tracking import RunTracker

from .conftest import tiny_overrides


def _opt():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return p, opt, sched


def test_checkpoint_roundtrip_and_retention(tmp_path):
    p, opt, sched = _opt()
    for step in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, step, {"w": p.detach() * step}, opt, sched,
                             {"epoch": 0}, keep=2)
    names = sorted(x.name for x in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-0000002", "step-0000003"]
    w, state, progress = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert torch.equal(w["w"], p.detach() * 3) and progress == {"step": 3, "epoch": 0}
    assert state["optimizer"]["state"][0]["step"] == 1


def test_interrupted_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    p, opt, sched = _opt()
    first = ckpt.save_checkpoint(tmp_path, 5, {"w": p.detach()}, opt, sched, {})
    before = (first / "draft.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 6, {"w": p.detach() + 1}, opt, sched, {})
    with pytest.raises(OSError):  # rewriting the same step fails too: old copy untouched
        ckpt.save_checkpoint(tmp_path, 5, {"w": p.detach() + 1}, opt, sched, {})
    root = tmp_path / "checkpoints"
    assert sorted(x.name for x in root.iterdir()) == ["latest", "step-0000005"]
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert (first / "draft.safetensors").read_bytes() == before


def test_wandb_offline_run_is_written(tmp_path, conv_file):
    from specbench.trainer import train

    over = tiny_overrides(conv_file, **{"trainer.max_steps": 2, "tracker.mode": "offline"})
    s = train(compose(over), tmp_path / "run")
    assert s["wandb"]["mode"] == "offline" and s["wandb"]["run_id"]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_wandb_failure_warns_and_local_files_continue(tmp_path, monkeypatch):
    import wandb

    def broken(**kwargs):
        raise RuntimeError("no wandb today")

    monkeypatch.setattr(wandb, "init", broken)
    cfg = compose(["tracker.mode=offline"])
    with pytest.warns(UserWarning, match="W&B could not start.*local metrics.jsonl"):
        tr = RunTracker(tmp_path, cfg.tracker, {}, "fp", "medusa")
    tr.log({"train/loss": 1.5}, step=1)
    tr.write_summary({"status": "completed"})
    tr.finish()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "train/loss": 1.5}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert "no wandb today" in tr.wandb_info["error"]
