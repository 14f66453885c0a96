"""Shared fixtures: tiny random targets, small conversation files, composed configs."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the Hub
os.environ.setdefault("SPECBENCH_COMPILE", "0")  # eager kernels; test_losses checks compiled ones


def write_conversations(path, n=48, seed=0):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "lamp", "seven"]
    with open(path, "w") as f:
        for i in range(n):
            q = f"Question {i}: tell me about {rng.choice(words)}."
            a = " ".join(rng.choice(words) for _ in range(rng.randint(6, 20))) + "."
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return path


@pytest.fixture
def conv_file(tmp_path):
    return write_conversations(tmp_path / "convs.jsonl")


def tiny_overrides(conv_path, model="tiny-llama", **extra):
    """Overrides for a fast, deterministic fp32 run on a tiny random target."""
    o = {"model": model, "data": "jsonl", "data.path": str(conv_path), "data.eval_rows": 8,
         "trainer.precision": "no", "trainer.micro_batch_size": 4, "trainer.max_length": 96,
         "trainer.progress": "false", "trainer.log_every": 1, "trainer.eval_every": 4,
         "tracker.mode": "disabled", "trainer.device": "cpu"}
    o.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in o.items()]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)
