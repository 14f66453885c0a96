"""``python -m specbench`` refuses bad settings before any work, and leaves no empty run dir."""

from __future__ import annotations

import subprocess
import sys
import time

from .conftest import tiny_overrides


def run_app(args, cwd):
    return subprocess.run([sys.executable, "-m", "specbench", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_refused_start_removes_its_empty_run_dir(tmp_path, conv_file):
    run = tmp_path / "run"
    t0 = time.time()
    p = run_app(tiny_overrides(conv_file, **{"trainer.max_grad_norm": 0}) + [
        f"hydra.run.dir={run}"], tmp_path)
    assert p.returncode == 2, p.stderr
    assert "trainer.max_grad_norm=0" in p.stderr and "Traceback" not in p.stderr
    assert "its empty run directory was removed" in p.stderr
    assert not run.exists()
    assert time.time() - t0 < 30


def test_a_refused_start_keeps_a_run_dir_with_results(tmp_path, conv_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    p = run_app(tiny_overrides(conv_file, **{"+trainer.typo": 1}) + [f"hydra.run.dir={run}"],
                tmp_path)
    assert p.returncode == 2 and "trainer.typo is not a setting" in p.stderr, p.stderr
    assert (run / "notes.txt").read_text() == "mine"


def test_export_format_the_algorithm_lacks_is_refused_before_training(tmp_path, conv_file):
    run = tmp_path / "run"
    p = run_app(tiny_overrides(conv_file) + ["export=[sglang]", f"hydra.run.dir={run}"],
                tmp_path)
    assert p.returncode == 2 and "export=[sglang]" in p.stderr, p.stderr
    assert "fingerprint" not in p.stdout  # refused before the target was even loaded


def test_the_run_log_holds_the_console_output(tmp_path, conv_file):
    run = tmp_path / "run"
    p = run_app(["debug=tiny", "data=jsonl", f"data.path={conv_file}", "trainer.max_steps=2",
                 "decode.enabled=false", f"hydra.run.dir={run}"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    log = (run / "__main__.log").read_text()
    for line in ("fingerprint", "medusa run completed", "results:"):
        assert line in p.stdout and line in log, line
    # Hydra's record of the job is written by the app once it holds the run dir
    assert (run / ".hydra" / "overrides.yaml").is_file()
    assert "trainer.max_steps=2" in (run / ".hydra" / "overrides.yaml").read_text()
