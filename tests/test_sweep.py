"""Multirun: sweep.json records every job; a failed job does not stop the sweep; a re-run skips
completed jobs unless force=true, which keeps the earlier files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import tiny_overrides, write_conversations

ROOT = Path(__file__).parents[1]


def sweep(root: Path, conv: Path, *extra: str) -> subprocess.CompletedProcess:
    over = [o for o in tiny_overrides(conv, **{"trainer.max_steps": 2, "decode.num_prompts": 1,
                                              "decode.max_new_tokens": 4})]
    cmd = [sys.executable, "-m", "specbench", "-m", f"hydra.sweep.dir={root}", *over,
           "trainer.epochs=1,0", *extra]  # the second job is invalid: epochs must be >= 1
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**__import__("os").environ, "SPECBENCH_COMPILE": "0"})


def test_sweep_records_jobs_survives_a_failure_and_skips_completed(tmp_path):
    conv = write_conversations(tmp_path / "conv.jsonl")
    root = tmp_path / "sweep"
    first = sweep(root, conv)
    assert first.returncode != 0  # Hydra reports the failed job once every job has run
    state = json.loads((root / "sweep.json").read_text())
    jobs = state["jobs"]
    assert [j["num"] for j in jobs] == [0, 1]
    ok, bad = jobs
    assert ok["status"] == "completed" and ok["algorithm"] == "medusa" and ok["fingerprint"]
    assert "trainer.epochs=1" in ok["overrides"] and ok["error"] is None
    assert bad["status"] == "failed" and "trainer.epochs=0 must be at least 1" in bad["error"]
    assert "trainer.epochs=1,0" in state["sweep_overrides"]
    assert state["status"] == "failed" and state["finished"]  # Hydra skips on_multirun_end
    assert ok["dir"] == "0-medusa"  # relative to the sweep root
    run0 = root / ok["dir"]
    assert (run0 / "draft.safetensors").is_file() and (run0 / "eval.json").is_file()
    mtime = (run0 / "summary.json").stat().st_mtime

    again = sweep(root, conv)
    assert "already holds this run, completed: skipped" in again.stdout
    jobs = json.loads((root / "sweep.json").read_text())["jobs"]
    assert [j["status"] for j in jobs] == ["skipped", "failed"]
    assert (run0 / "summary.json").stat().st_mtime == mtime  # untouched

    forced = sweep(root, conv, "force=true")
    jobs = json.loads((root / "sweep.json").read_text())["jobs"]
    assert jobs[0]["status"] == "completed", forced.stdout[-2000:] + forced.stderr[-2000:]
    assert (run0 / "previous-1" / "draft.safetensors").is_file()  # nothing lost
    assert (run0 / "draft.safetensors").is_file() and (run0 / ".hydra").is_dir()
