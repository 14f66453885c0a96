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


def _wandb_records(path):
    """Records of an offline ``.wandb`` file (W&B's LevelDB-style log of protobuf records:
    a 7-byte file header, 32 KiB blocks, 7-byte chunk headers)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos: pos + 7])
        buf += data[pos + 7: pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_wandb_offline_run_holds_training_and_decoding(tmp_path, conv_file):
    from specbench.evaluate import evaluate
    from specbench.trainer import train

    over = tiny_overrides(conv_file, **{"trainer.max_steps": 2, "tracker.mode": "offline"})
    run = tmp_path / "run"
    s = train(compose(over), run, after=lambda tracker: evaluate(
        run, {"num_prompts": 2, "max_new_tokens": 4}, tracker=tracker))
    assert s["wandb"]["mode"] == "offline" and s["wandb"]["run_id"]
    files = list((run / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 1
    records = list(_wandb_records(files[0]))
    kinds = {}
    for r in records:
        kinds.setdefault(r.WhichOneof("record_type"), []).append(r)
    meta = kinds["run"][0].run
    assert meta.run_group.endswith("." + s["fingerprint"]) and meta.job_type == "medusa"
    metrics = {(m.metric.name or m.metric.glob_name): m.metric for m in kinds["metric"]}
    assert metrics["*"].step_metric == "train/step"
    assert metrics["eval/loss"].summary.min and metrics["eval/tau_sim"].summary.max
    summary = {u.key: u.value_json for r in kinds["summary"] for u in r.summary.update}
    assert float(summary["decode/autoregressive/tau"]) == 1.0
    assert "decode/medusa_tree/speedup" in summary and "train/tau_sim" in summary
    logged = {i.key or "/".join(i.nested_key) for r in kinds["history"] for i in r.history.item}
    assert "decode/per_category/_type" in logged  # the per-category wandb.Table


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
