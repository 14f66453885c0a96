"""End to end: `python -m specbench` on the embedded SmolLM2 with a tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_python_m_specbench_on_embedded_model(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "specbench", f"hydra.run.dir={run}", "trainer.max_steps=8",
           "trainer.micro_batch_size=4", "trainer.max_length=192", "data.eval_rows=8",
           "trainer.eval_every=4", "trainer.progress=false", "decode.num_prompts=2",
           "decode.max_new_tokens=16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Controlled variables (fingerprint" in out and "Algorithm-specific (medusa)" in out
    assert f"results: {run}/summary.json" in out and "eval.json" in out
    ev = json.loads((run / "eval.json").read_text())
    assert ev["settings"]["num_prompts"] == 2 and ev["settings"]["max_new_tokens"] == 16
    assert set(ev["overall"]) == {"autoregressive", "prompt_lookup", "lookahead", "medusa_chain",
                                  "medusa_tree"}
    assert ev["overall"]["autoregressive"]["tau"] == 1.0
    assert all(m["tau"] >= 1.0 and m["exact"] for m in ev["overall"].values())
    assert "medusa_tree" in out and "speedup" in out  # the printed table

    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "completed" and s["algorithm"] == "medusa"
    c = s["checklist"]
    assert c["dataset_rows"] == 320 and c["train_rows"] == 312 and c["eval_rows"] == 8
    assert c["optimizer_steps_taken"] == c["expected_optimizer_steps"] == 8 and c["steps_match"]
    assert c["global_batch"] == 4 and c["tokens_trained"] > 8 * 4 * 50
    assert s["controlled"]["model"]["source"] == "embedded"
    assert len(s["fingerprint"]) == 12 and f"fingerprint {s['fingerprint']}" in out
    # per-head accuracies on the held-out split, far above chance (1/49152)
    top1 = s["eval_split"]["top1"]
    assert len(top1) == 4 and top1[0] > 0.05, top1
    assert s["eval_split"]["tau_sim"] > 1.0 and s["train"]["tokens_per_s"] > 0
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "train/loss" in m] == [5, 8]
    assert [m["step"] for m in metrics if "eval/loss" in m] == [4, 8]
    weights = load_file(str(run / "draft.safetensors"))
    # default Medusa: 4 heads x 1 residual block, sharing the frozen target lm_head
    assert {k: tuple(v.shape) for k, v in weights.items()} == {
        **{f"blocks.{k}.layers.0.weight": (576, 576) for k in range(4)},
        **{f"blocks.{k}.layers.0.bias": (576,) for k in range(4)}}
    assert s["train"]["trainable_params"] == 4 * (576 * 576 + 576)
    assert (run / "checkpoints" / "step-0000008" / "draft.safetensors").is_file()
    assert s["wandb"]["mode"] == "offline" and list((run / "wandb").glob("offline-run-*"))
