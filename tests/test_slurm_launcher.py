"""The submitit launcher: a 2-job sweep through hydra/launcher=submitit_local and the local
preset (jobs in their own processes, at once), sweep.json under concurrent writers, the
rank-0-only job record, and the slurm/local presets (composed, and the sbatch script they
give)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from specbench import sweep
from specbench.sweep import SWEEP_FILE, SWEEP_LOCK, SweepRecorder, finish_sweep, process_rank

from .conftest import tiny_overrides, write_conversations

ROOT = Path(__file__).parents[1]


def _needs_submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="pip install -e '.[slurm]' (the dev extra includes it)")


def _specbench(*args, timeout=300):
    env = {**os.environ, "SPECBENCH_COMPILE": "0", "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "specbench", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env=env)


def _sweep_args(tmp_path, launcher, *extra):
    conv = write_conversations(tmp_path / "conv.jsonl")
    over = tiny_overrides(conv, **{"trainer.max_steps": 2, "decode.enabled": "false"})
    return ["-m", f"hydra/launcher={launcher}", "debug=tiny", *over,
            f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra]


@pytest.mark.parametrize("launcher", ["submitit_local", "local"])
def test_two_job_sweep_through_the_submitit_launcher(tmp_path, launcher):
    _needs_submitit()
    proc = _specbench(*_sweep_args(tmp_path, launcher, "algorithm=medusa,eagle3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "sweep"
    state = json.loads((root / SWEEP_FILE).read_text())
    assert state["status"] == "completed" and state["finished"], state
    assert state["jobs_total"] == 2 and state["note"] is None
    jobs = state["jobs"]
    assert [(j["num"], j["algorithm"], j["status"], j["run_status"]) for j in jobs] == [
        (0, "medusa", "completed", "completed"), (1, "eagle3", "completed", "completed")]
    assert jobs[0]["fingerprint"] == jobs[1]["fingerprint"] is not None
    assert all(j["sweep_started"] == state["started"] and j["error"] is None for j in jobs)
    for j in jobs:
        run = root / j["dir"]
        assert (run / "summary.json").is_file() and (run / "draft.safetensors").is_file()
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    # each job ran in a submitit process: the callback's job line is in its log, not here
    logs = sorted((root / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2, logs
    text = "".join(p.read_text() for p in logs)
    assert "[specbench] job 1/2: " in text and "[specbench] job 2/2: " in text
    assert "[specbench] job 1/2: " not in proc.stdout


def test_a_failed_job_in_a_submitit_process_fails_the_sweep(tmp_path):
    """The final status comes from the launching process (atexit: Hydra skips
    on_multirun_end), after the job processes recorded themselves."""
    _needs_submitit()
    proc = _specbench(*_sweep_args(tmp_path, "submitit_local", "trainer.epochs=1,0"))
    assert proc.returncode != 0
    state = json.loads((tmp_path / "sweep" / SWEEP_FILE).read_text())
    assert state["status"] == "failed" and state["finished"], state
    assert [j["status"] for j in state["jobs"]] == ["completed", "failed"]
    assert "trainer.epochs" in state["jobs"][1]["error"]


# ----------------------------------------------------------------- concurrent writers

WRITERS, UPDATES = 4, 30


def _writer(root: str, who: int) -> None:
    for i in range(UPDATES):
        for status in ("running", "completed"):
            sweep._update_job(Path(root), {"num": who * UPDATES + i, "dir": f"{who}-{i}",
                                           "overrides": [f"w={who}", f"i={i}"],
                                           "status": status, "error": None})


def _reader(root: str, stop, bad) -> None:
    path = Path(root) / SWEEP_FILE
    while not stop.is_set():
        try:
            json.loads(path.read_text())
        except (ValueError, OSError) as err:
            bad.put(repr(err))
            return


def test_concurrent_job_updates_lose_nothing(tmp_path):
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"status": "running", "started": "T0",
                                                   "jobs": []}))
    ctx = multiprocessing.get_context("spawn")  # no state shared by fork
    stop, bad = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(tmp_path), stop, bad))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(WRITERS)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=240)
    stop.set()
    reader.join(timeout=30)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    assert bad.empty(), bad.get()  # the file was valid JSON every time it was read
    state = json.loads((tmp_path / SWEEP_FILE).read_text())
    jobs = state["jobs"]
    assert len(jobs) == WRITERS * UPDATES  # no entry lost
    assert {j["dir"] for j in jobs} == {f"{w}-{i}" for w in range(WRITERS)
                                        for i in range(UPDATES)}
    assert all(j["status"] == "completed" and j["sweep_started"] == "T0" for j in jobs)
    assert [j["num"] for j in jobs] == sorted(j["num"] for j in jobs)
    assert not [p.name for p in tmp_path.iterdir()  # no temporary file left
                if p.name.startswith(f".{SWEEP_FILE}.") and p.name != SWEEP_LOCK]
    finish_sweep(tmp_path, at_exit=False)
    assert json.loads((tmp_path / SWEEP_FILE).read_text())["status"] == "completed"


# ------------------------------------------------------------------ one record per job

@pytest.mark.parametrize("env,rank", [
    ({}, 0), ({"RANK": "1"}, 1), ({"RANK": "0", "SLURM_PROCID": "3"}, 0),
    ({"SLURM_PROCID": "5"}, 5), ({"SUBMITIT_LOCAL_GLOBALID": "2"}, 2), ({"RANK": ""}, 0)])
def test_process_rank(monkeypatch, env, rank):
    for var in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert process_rank() == rank


def test_only_rank_0_records_the_job(tmp_path, monkeypatch):
    root = tmp_path / "sweep"
    (root / "0-medusa").mkdir(parents=True)
    (root / SWEEP_FILE).write_text(json.dumps({"status": "running", "started": "T0",
                                               "jobs_total": 1, "jobs": []}))
    ns = SimpleNamespace
    hc = ns(mode=ns(name="MULTIRUN"), sweep=ns(dir=str(root)), job=ns(num=0),
            overrides=ns(task=["algorithm=medusa"]), runtime=ns(output_dir=str(root / "0-medusa")))
    monkeypatch.setattr(sweep, "_hydra", lambda: hc)
    monkeypatch.setattr(sweep, "check_callback_overrides", lambda args: None)
    recorder = SweepRecorder()
    done = SimpleNamespace(status=SimpleNamespace(name="COMPLETED"), _return_value=1.0)
    for var in ("SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "1")
    before = (root / SWEEP_FILE).read_text()
    recorder.on_multirun_start(None)  # torchrun -m specbench -m: each rank runs the sweeper
    recorder.on_job_start(None)
    recorder.on_job_end(None, done)
    recorder.on_multirun_end(None)
    assert (root / SWEEP_FILE).read_text() == before
    monkeypatch.setenv("RANK", "0")
    recorder.on_job_start(None)
    assert [j["status"] for j in json.loads((root / SWEEP_FILE).read_text())["jobs"]] == [
        "running"]
    recorder.on_job_end(None, done)
    (job,) = json.loads((root / SWEEP_FILE).read_text())["jobs"]
    assert job["status"] == "completed" and job["objective"] == 1.0 and job["dir"] == "0-medusa"


# ------------------------------------------------------------------------- the presets

def _hydra_cfg(*overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from specbench.config import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides),
                             return_hydra_config=True)


def test_the_presets_compose():
    _needs_submitit()
    slurm = _hydra_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "hydra.launcher.account=proj", "hydra.launcher.timeout_min=60",
                       "hydra.launcher.signal_delay_s=120", "hydra.sweep.dir=/sweeps/x",
                       ).hydra.launcher
    assert slurm._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (slurm.nodes, slurm.gpus_per_node, slurm.tasks_per_node) == (1, 8, 8)
    assert slurm.cpus_per_task >= 1 and slurm.mem_gb >= 1 and slurm.signal_delay_s > 0
    assert slurm.max_num_timeout > 0 and slurm.additional_parameters.requeue is True
    # the trainer's time-limit signal, SIGUSR1 (not submitit's SIGUSR2), for SLURM and submitit
    assert slurm.additional_parameters.signal == "USR1@120"
    assert slurm.additional_parameters.export == "ALL,SUBMITIT_PREEMPT_SIGNAL=USR1,SLURM_KILL_BAD_EXIT=1"
    assert (slurm.partition, slurm.account, slurm.timeout_min) == ("gpu", "proj", 60)
    assert slurm.submitit_folder == "/sweeps/x/.submitit/%j"
    local = _hydra_cfg("hydra/launcher=local").hydra.launcher
    assert local._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert (local.tasks_per_node, local.gpus_per_node) == (1, 0) and local.timeout_min <= 60
    plain = _hydra_cfg("hydra/launcher=submitit_local").hydra.launcher
    assert plain._target_ == local._target_


def test_the_slurm_preset_gives_this_sbatch_script(tmp_path, monkeypatch):
    """The launcher's own translation of the preset into sbatch flags, up to the submission
    (no SLURM here: srun's presence and the submission are faked)."""
    _needs_submitit()
    import submitit
    from hydra.utils import instantiate
    from submitit.slurm import slurm as submitit_slurm

    cfg = _hydra_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                     "hydra.launcher.account=proj", f"hydra.sweep.dir={tmp_path}")
    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    seen = {}

    def map_array(self, fn, *args):
        seen.update(executor=self._executor, jobs=list(zip(*args)))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["algorithm=medusa"], ["algorithm=eagle3"]], initial_job_idx=0)
    executor = seen["executor"]
    assert [job[0] for job in seen["jobs"]] == [["algorithm=medusa"], ["algorithm=eagle3"]]
    assert executor.max_num_timeout == cfg.hydra.launcher.max_num_timeout
    script = submitit_slurm._make_sbatch_string(command="CMD", folder=executor.folder,
                                                map_count=2, **executor.parameters)
    flags = {line.removeprefix("#SBATCH ") for line in script.splitlines()
             if line.startswith("#SBATCH ")}
    assert {"--nodes=1", "--gpus-per-node=8", "--ntasks-per-node=8", "--cpus-per-task=10",
            "--mem=480GB", "--time=1440", "--partition=gpu", "--account=proj", "--requeue",
            "--signal=USR1@300", "--export=ALL,SUBMITIT_PREEMPT_SIGNAL=USR1,SLURM_KILL_BAD_EXIT=1", "--array=0-1%2",
            "--job-name=specbench"} <= flags, flags
    assert [f for f in flags if f.startswith("--signal")] == ["--signal=USR1@300"]
    assert "\nsrun " in script  # one task per GPU, started by srun


def test_cfg_hydra_prints_the_slurm_launcher():
    _needs_submitit()
    proc = _specbench("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra",
                      "-p", "hydra.launcher", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = OmegaConf.create(proc.stdout)
    assert shown.partition == "gpu" and shown.tasks_per_node == 8
    assert shown._target_.endswith("SlurmLauncher")
