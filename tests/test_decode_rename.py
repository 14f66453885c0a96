"""Issue 9: the post-training decoding group is ``decode`` (it was ``eval``; "eval" now means the
held-out split only). The old name still works for one release: on the command line with one
warning line, and in run directories recorded before the rename (their config.json and
summary.json hold an "eval" section). Fingerprints did not change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from specbench import fairness
from specbench.config import compose, plain_group_overrides, with_renamed_sections
from specbench.io import stable_hash

ROOT = Path(__file__).parents[1]
RECORDED = sorted(p.parent for p in (ROOT / "experiments").glob("*/*/config.json"))
OLD_RUNS = [r for r in RECORDED if "eval" in json.loads((r / "config.json").read_text())]
NEW_RUNS = [r for r in RECORDED if r not in OLD_RUNS]
WARNING = "eval.* is now decode.*; the old name goes in the next release"


def test_old_overrides_are_rewritten_with_one_warning_line(capsys):
    args = ["eval.num_prompts=2", "+eval.lookahead.typo=1", "eval=default", "++eval.dtype=null",
            "data.eval_rows=3", "trainer.eval_every=2", "objective=eval_split.loss",
            "+experiment=seed_repeat", "decode.max_new_tokens=5", "hydra.run.dir=eval.x"]
    assert plain_group_overrides(args) == [
        "decode.num_prompts=2", "+decode.lookahead.typo=1", "decode=default",
        "++decode.dtype=null", "data.eval_rows=3", "trainer.eval_every=2",
        "objective=eval_split.loss", "experiment=seed_repeat", "decode.max_new_tokens=5",
        "hydra.run.dir=eval.x"]
    out = capsys.readouterr().err  # a warning: on stderr
    assert out.count(WARNING) == 1 and len(out.strip().splitlines()) == 1, out
    assert "decode.num_prompts=2" in out  # says how the old overrides were read
    plain_group_overrides(["data.eval_rows=3", "decode.num_prompts=2", "+experiment=x"])
    assert WARNING not in capsys.readouterr().err  # the new names: no warning


def test_compose_reads_the_old_name(capsys):
    cfg = compose(["eval.num_prompts=7", "eval.lookahead.level=4"])
    assert cfg.decode.num_prompts == 7 and cfg.decode.lookahead.level == 4
    assert "eval" not in cfg
    assert WARNING in capsys.readouterr().err
    assert compose(["eval=default"]).decode == compose().decode


def test_the_cli_rewrites_the_old_name():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "specbench", "eval.num_prompts=3",
                           "model=tiny-llama", "--cfg", "job"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert WARNING in proc.stderr
    job = proc.stdout[proc.stdout.index("algorithm:"):]
    assert OmegaConf.create(job).decode.num_prompts == 3


def test_fingerprint_hashes_decode_under_its_old_key():
    cfg = compose(["decode.num_prompts=9"])
    controlled = fairness.controlled_variables(cfg)
    assert "decode" in controlled and "eval" not in controlled  # what summary.json shows
    controlled["eval"] = controlled.pop("decode")
    payload = {"controlled": controlled, "dataset_sha256": "0" * 64,
               "global_batch": cfg.trainer.micro_batch_size * cfg.trainer.grad_accum}
    assert fairness.fingerprint(cfg, "0" * 64) == stable_hash(payload)[:12]


@pytest.mark.parametrize("run", OLD_RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_runs_recorded_before_the_rename(run, tmp_path):
    """The recorded experiments: their eval section reads as decode (evaluate, compare, sweep)
    and their fingerprint, recomputed from their config.json, is the recorded one."""
    from specbench.checkpoint import read_run_config
    from specbench.compare.runs import load_run
    from specbench.evaluate import _eval_config
    from specbench.sweep import already_completed

    saved = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert "eval" in saved and "decode" not in saved and "eval" in summary["controlled"]
    renamed = with_renamed_sections(saved)
    assert list(renamed) == [("decode" if k == "eval" else k) for k in saved]
    assert renamed["decode"] == saved["eval"] and with_renamed_sections(renamed) is renamed

    e = _eval_config(run, read_run_config(run), {"max_new_tokens": 5})
    assert e.num_prompts == saved["eval"]["num_prompts"] and e.max_new_tokens == 5

    r = load_run(run)
    assert r.controlled["decode.num_prompts"] == saved["eval"]["num_prompts"]
    assert not any(k.startswith("eval.") for k in r.controlled)

    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    assert already_completed(copy, renamed)  # a re-run of the same job is skipped

    sha = summary["checklist"]["dataset_sha256"]
    assert fairness.fingerprint(OmegaConf.create(renamed), sha) == summary["fingerprint"]


@pytest.mark.parametrize("run", NEW_RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_runs_recorded_after_the_rename(run):
    """A recorded run with a decode section: its fingerprint, recomputed from its config.json
    by today's code, is the recorded one (so it stays comparable with new runs)."""
    saved = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert "decode" in saved and "eval" not in saved
    sha = summary["checklist"]["dataset_sha256"]
    assert fairness.fingerprint(OmegaConf.create(saved), sha) == summary["fingerprint"]
