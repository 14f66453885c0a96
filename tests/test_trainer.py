"""The shared trainer on tiny fp32 targets: determinism, resume equivalence, the checklist,
checkpoints and run files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from specbench.checkpoint import latest_checkpoint
from specbench.config import compose
from specbench.errors import UserError
from specbench.trainer import lr_lambda, train

from .conftest import tiny_overrides


def losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def test_summary_checklist_and_files(tmp_path, conv_file):
    cfg = compose(tiny_overrides(conv_file, **{"trainer.epochs": 2,
                                               "algorithm.lm_head": "per_head"}))
    s = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("summary.json", "metrics.jsonl", "config.json", "draft.safetensors"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["fingerprint"] == s["fingerprint"] and on_disk["status"] == "completed"
    c = s["checklist"]
    assert c["train_rows"] == 40 and c["eval_rows"] == 8 and c["global_batch"] == 4
    assert c["expected_optimizer_steps"] == 20 == c["optimizer_steps_taken"] and c["steps_match"]
    assert c["dataset_rows"] == 48 and len(c["dataset_sha256"]) == 64
    assert c["tokens_trained"] == 2 * s["dataset"]["train_tokens"]
    assert len(s["train"]["top1"]) == 4 and s["train"]["tau_sim"] >= 1.0
    assert len(s["eval_split"]["top1"]) == 4 and s["eval_split"]["loss"] > 0
    weights = load_file(str(run / "draft.safetensors"))
    assert set(weights) == {f"blocks.{k}.layers.0.{p}" for k in range(4) for p in ("weight", "bias")} | \
        {f"lm_heads.{k}.weight" for k in range(4)}
    assert s["checkpoint"] == "checkpoints/step-0000020"


def test_same_settings_same_curve(tmp_path, conv_file):
    cfg = compose(tiny_overrides(conv_file, **{"trainer.max_steps": 5}))
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    wa, wb = (load_file(str(tmp_path / r / "draft.safetensors")) for r in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_matches_uninterrupted(tmp_path, conv_file):
    """Interrupted after 7 of 20 steps (mid-epoch) and resumed: identical final weights."""
    over = tiny_overrides(conv_file, **{"trainer.epochs": 2, "algorithm.lm_head": "shared"})
    full = train(compose(over), tmp_path / "full")
    part = train(compose(over), tmp_path / "part", stop_after_steps=7)
    assert part["status"] == "interrupted" and part["checklist"]["optimizer_steps_taken"] == 7
    assert latest_checkpoint(tmp_path / "part").name == "step-0000007"
    resumed = train(compose(over + ["trainer.resume=true"]), tmp_path / "part")
    assert resumed["checklist"]["optimizer_steps_taken"] == 20 and resumed["checklist"]["steps_match"]
    assert resumed["checklist"]["tokens_trained"] == full["checklist"]["tokens_trained"]
    wa = load_file(str(tmp_path / "full" / "draft.safetensors"))
    wb = load_file(str(tmp_path / "part" / "draft.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert losses(tmp_path / "part") == losses(tmp_path / "full")


def test_existing_checkpoints_are_never_overwritten(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 2})
    train(compose(over), tmp_path / "run")
    before = (tmp_path / "run" / "draft.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds checkpoints.*trainer.resume=true"):
        train(compose(over), tmp_path / "run")
    assert (tmp_path / "run" / "draft.safetensors").read_bytes() == before
    # killed before its first checkpoint: resuming starts again at step 0, with a warning
    s = train(compose(over + ["trainer.resume=true"]), tmp_path / "empty")
    assert s["status"] == "completed" and s["checklist"]["optimizer_steps_taken"] == 2


def test_resume_refuses_changed_controlled_settings(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 4})
    train(compose(over), tmp_path / "run", stop_after_steps=2)
    with pytest.raises(UserError, match="fingerprint .* differs"):
        train(compose(over + ["trainer.resume=true", "trainer.lr=0.5"]), tmp_path / "run")


def test_grad_accumulation_counts_global_batch(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.micro_batch_size": 2, "trainer.grad_accum": 3})
    s = train(compose(over), tmp_path / "run")
    c = s["checklist"]
    assert c["global_batch"] == 6 and c["grad_accum"] == 3
    assert c["expected_optimizer_steps"] == 7 == c["optimizer_steps_taken"]  # ceil(40 / 6)


def test_lr_schedule_warmup_then_cosine_to_zero():
    f = lr_lambda(warmup=4, total=20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and f(12) == pytest.approx(0.5) and f(20) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(4, 20))


def test_training_improves_the_draft(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.epochs": 3, "trainer.lr": 3e-3,
                                        "algorithm.labels": "dataset",
                                        "algorithm.lm_head": "per_head"})
    train(compose(over), tmp_path / "run")
    curve = losses(tmp_path / "run")
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5


def test_fp32_training_on_a_bf16_target(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"model.dtype": "bfloat16", "trainer.max_steps": 2})
    from specbench.algorithms import CONFIGS

    fast = {"eagle3": ["algorithm.draft_vocab_size=64"]}  # only makes the tiny run faster
    for algo in sorted(CONFIGS):
        s = train(compose(over + [f"algorithm={algo}", *fast.get(algo, [])]), tmp_path / algo)
        assert s["status"] == "completed"


def test_resume_guards(tmp_path, conv_file):
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 4})
    train(compose(over), tmp_path / "run", stop_after_steps=2)
    with pytest.raises(UserError, match=r"algorithm.num_heads: checkpoint 4, now 3"):
        train(compose(over + ["trainer.resume=true", "algorithm.num_heads=3"]), tmp_path / "run")
    train(compose(over + ["trainer.resume=true"]), tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]
    # resuming a completed run trains nothing more: it only finishes (publish, summary, after)
    again = train(compose(over + ["trainer.resume=true"]), tmp_path / "run")
    assert again["status"] == "completed" and again["checklist"]["optimizer_steps_taken"] == 4
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]


@pytest.mark.parametrize("key", ["eval_every", "micro_batch_size", "log_every"])
def test_zero_counts_are_clear_errors(tmp_path, conv_file, key):
    with pytest.raises(UserError, match=f"trainer.{key}=0 must be at least 1"):
        train(compose(tiny_overrides(conv_file, **{f"trainer.{key}": 0})), tmp_path / "run")


def test_too_little_disk_is_a_clear_error(tmp_path, conv_file, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(UserError, match="Not enough disk for checkpoints.*keep_checkpoints"):
        train(compose(tiny_overrides(conv_file)), tmp_path / "run")
