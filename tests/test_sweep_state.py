"""Sweep bookkeeping: sweep.json's final state after a failed job, job progress, re-runs with
trainer.resume=true, the sweep objective, and the callback allow-list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from specbench.config import compose
from specbench.errors import UserError
from specbench.sweep import (
    already_completed,
    check_callback_overrides,
    check_callbacks,
    finish_sweep,
    jobs_total,
    objective_value,
)

from .conftest import tiny_overrides, write_conversations

ROOT = Path(__file__).parents[1]


def _specbench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "specbench", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "SPECBENCH_COMPILE": "0"})


def test_failed_sweep_is_finished_and_a_resume_rerun_skips_completed_jobs(tmp_path):
    conv = write_conversations(tmp_path / "conv.jsonl")
    root = tmp_path / "sweep"
    args = ["-m", f"hydra.sweep.dir={root}",
            *tiny_overrides(conv, **{"trainer.max_steps": 2, "decode.enabled": "false"}),
            "trainer.epochs=1,0"]  # the second job is invalid: epochs must be >= 1
    first = _specbench(*args)
    assert first.returncode != 0
    assert "[specbench] job 1/2: " in first.stdout and "[specbench] job 2/2: " in first.stdout
    state = json.loads((root / "sweep.json").read_text())
    assert state["status"] == "failed" and state["finished"], state  # was: running, null
    assert state["jobs_total"] == 2
    assert [j["status"] for j in state["jobs"]] == ["completed", "failed"]
    run0 = root / state["jobs"][0]["dir"]
    mtime = (run0 / "summary.json").stat().st_mtime

    again = _specbench(*args, "trainer.resume=true")
    state = json.loads((root / "sweep.json").read_text())
    ok, bad = state["jobs"]
    assert ok["status"] == "skipped", again.stderr[-3000:]  # was: failed, nothing to resume
    assert "already holds this run, completed: skipped" in again.stdout
    assert (run0 / "summary.json").stat().st_mtime == mtime
    assert bad["status"] == "failed"
    assert state["status"] == "failed" and state["finished"]


def _run(tmp_path, resolved, status="completed"):
    (tmp_path / "summary.json").write_text(json.dumps({"status": status}))
    (tmp_path / "config.json").write_text(json.dumps(resolved))
    return tmp_path


def _resolved(*overrides):
    return OmegaConf.to_container(compose(["decode.enabled=false", *overrides]), resolve=True,
                                  enum_to_str=True)


def test_already_completed_ignores_only_rerun_keys(tmp_path):
    run = _run(tmp_path, _resolved())
    assert already_completed(run, _resolved())
    assert already_completed(run, _resolved("trainer.resume=true"))
    assert already_completed(run, _resolved("force=true", "trainer.progress=false",
                                            "objective=eval_split.loss"))
    assert not already_completed(run, _resolved("trainer.lr=0.5"))
    assert not already_completed(run, _resolved("trainer.eval_every=3"))
    assert not already_completed(_run(tmp_path, _resolved(), status="failed"), _resolved())


def test_finish_sweep_marks_interrupted_jobs(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"status": "running", "finished": None,
                                                     "jobs": [{"num": 0, "status": "completed"},
                                                              {"num": 1, "status": "running"}]}))
    finish_sweep(tmp_path)
    state = json.loads((tmp_path / "sweep.json").read_text())
    assert state["status"] == "interrupted" and state["finished"]
    assert state["jobs"][1]["status"] == "interrupted"
    # the sweeper stopped (e.g. it raised) after 1 of 3 jobs: not "completed"
    (tmp_path / "sweep.json").write_text(json.dumps({
        "status": "running", "started": "T1", "jobs_total": 3,
        "jobs": [{"num": 0, "status": "completed", "sweep_started": "T0"},
                 {"num": 1, "status": "completed", "sweep_started": "T1"}]}))
    finish_sweep(tmp_path)
    state = json.loads((tmp_path / "sweep.json").read_text())
    assert state["status"] == "interrupted"
    assert state["note"] == "the sweep stopped after 1 of its 3 jobs"
    finish_sweep(tmp_path, at_exit=False)  # on_multirun_end: every job ran
    assert json.loads((tmp_path / "sweep.json").read_text())["status"] == "completed"
    finish_sweep(tmp_path / "nothing-here")  # no sweep.json: nothing written
    assert not (tmp_path / "nothing-here").exists()


def _hydra_cfg(*overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from specbench.config import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides),
                             return_hydra_config=True).hydra


def test_jobs_total_counts_the_grid():
    assert jobs_total(_hydra_cfg("experiment=lr_matched")) == 6
    assert jobs_total(_hydra_cfg()) == 1
    grid = OmegaConf.create({"sweeper": {"params": {"algorithm.num_heads": "2,3,4,5",
                                                    "trainer.lr": "1e-3,2e-3"}},
                             "overrides": {"task": ["trainer.seed=0,1,2", "trainer.lr=1e-3",
                                                    "algorithm.num_heads=range(2,4)"]}})
    assert jobs_total(grid) == 2 * 3  # the command line replaces a key of the params
    optuna = OmegaConf.create({"sweeper": {"n_trials": 7}, "overrides": {"task": []}})
    assert jobs_total(optuna) == 7


def test_objective_value():
    summary = {"eval_split": {"tau_sim": 1.25, "loss": 3.0, "top1": [0.5, 0.25]},
               "status": "completed"}
    assert objective_value(compose(), summary) == 1.25  # the default: eval_split.tau_sim
    assert objective_value(compose(["objective=eval_split.loss"]), summary) == 3.0
    assert objective_value(compose(["objective=eval_split.top1.1"]), summary) == 0.25
    nan = objective_value(compose(), {"eval_split": {"tau_sim": None}})
    assert nan != nan
    with pytest.raises(UserError, match=r"objective=eval_split.tau: the run's summary.json has "
                                         r"no such entry.*eval_split.tau_sim, eval_split.loss"):
        objective_value(compose(["objective=eval_split.tau"]), summary)
    with pytest.raises(UserError, match="objective=status is str, not a number"):
        objective_value(compose(["objective=status"]), summary)


@pytest.mark.parametrize("arg", [
    "+hydra.callbacks.x._target_=specbench.export.export_run",
    "hydra.callbacks.sweep_recorder._target_=os.system",
    "+hydra.callbacks.x={_target_: shutil.rmtree, path: /tmp/x}",
])
def test_callbacks_outside_the_allow_list_are_refused(arg):
    with pytest.raises(UserError, match="is not an allowed callback"):
        check_callback_overrides(["-m", "trainer.lr=1e-3", arg])


def test_allowed_callbacks_pass():
    check_callback_overrides([
        "+hydra.callbacks.log._target_=hydra.experimental.callbacks.LogJobReturnCallback",
        "~hydra.callbacks.sweep_recorder", "trainer.lr=1e-3", "--cfg", "job"])
    check_callbacks(_hydra_cfg())
    with pytest.raises(UserError, match="hydra.callbacks.x._target_=builtins.exec"):
        check_callbacks(_hydra_cfg("+hydra.callbacks.x._target_=builtins.exec"))


def test_cli_refuses_a_callback_before_calling_it(tmp_path):
    marker = tmp_path / "called"
    proc = _specbench("model=tiny-llama", "tracker.mode=disabled", f"hydra.run.dir={tmp_path}/r",
                      "+hydra.callbacks.x._target_=pathlib.Path.touch",
                      f"+hydra.callbacks.x.self={marker}", timeout=120)
    assert proc.returncode != 0
    assert "hydra.callbacks.x._target_=pathlib.Path.touch is not an allowed callback" in (
        proc.stderr + proc.stdout)
    assert not marker.exists() and not (tmp_path / "r" / "summary.json").exists()


def test_optuna_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    hc = _hydra_cfg("+hparams_search=lr_search")
    assert hc.mode.name == "MULTIRUN" and hc.sweeper.direction == "maximize"
    assert "trainer.lr" in hc.sweeper.params and jobs_total(hc) == hc.sweeper.n_trials
    cfg = compose(["+hparams_search=lr_search"])
    assert cfg.objective == "eval_split.tau_sim" and not cfg.decode.enabled
