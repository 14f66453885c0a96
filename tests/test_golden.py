"""Golden fp32 training curves: refactors must keep them bit-identical on the CPU.

Short tiny-llama runs of every registered algorithm record their training losses, held-out
per-position top-1 and a checksum of the final draft weights in ``tests/golden.json``. A change
that alters any of them either fixes a bug (then regenerate the file and name the bug in the
commit) or is a regression.

Regenerate: ``SPECBENCH_REGOLD=1 python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from specbench.algorithms import REGISTRY
from specbench.config import compose
from specbench.trainer import train

from .conftest import tiny_overrides, write_conversations

GOLDEN = Path(__file__).with_name("golden.json")


def weights_sha256(path: Path) -> str:
    h = hashlib.sha256()
    tensors = load_file(str(path))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def record(algorithm: str, tmp_path: Path) -> dict:
    conv = write_conversations(tmp_path / "convs.jsonl")
    cfg = compose(tiny_overrides(conv, algorithm=algorithm, **{"trainer.max_steps": 9,
                                                               "trainer.eval_every": 9}))
    run = tmp_path / "run"
    summary = train(cfg, run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "train_loss": [r["train/loss"] for r in rows if "train/loss" in r],
        "train_top1_0": [r["train/top1/0"] for r in rows if "train/top1/0" in r],
        "eval_top1": summary["eval_split"]["top1"],
        "eval_loss": summary["eval_split"]["loss"],
        "weights_sha256": weights_sha256(run / "draft.safetensors"),
    }


@pytest.mark.parametrize("algorithm", sorted(REGISTRY))
def test_golden_curve(algorithm, tmp_path):
    got = record(algorithm, tmp_path)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if os.environ.get("SPECBENCH_REGOLD") == "1":
        golden[algorithm] = got
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden values regenerated")
    assert algorithm in golden, f"no golden values for {algorithm}: run with SPECBENCH_REGOLD=1"
    want = golden[algorithm]
    assert len(got["train_loss"]) == 9
    for key in ("train_loss", "train_top1_0", "eval_top1", "eval_loss", "weights_sha256"):
        assert got[key] == want[key], f"{algorithm} {key} changed: {got[key]} != {want[key]}"
