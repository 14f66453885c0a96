"""Several processes (torchrun, gloo, two CPU processes): DDP and FSDP2 train the same draft as
one process at the same global batch, write one set of files, resume after a rank is killed,
and a launch that cannot work is refused in seconds with a message naming the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .campaign_util import WRAPPER, env, metric_rows, summary, weights
from .conftest import tiny_overrides, write_conversations

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not built in")


def torchrun(args, cwd: Path, nproc: int = 2, script: Path | None = None, timeout: int = 300,
             **extra_env) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(nproc)]
    what = [str(script)] if script is not None else ["-m", "specbench"]
    return subprocess.run([*launcher, *what, *args], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def one_process(args, cwd: Path, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench", *args], cwd=cwd,
                          env=env(**extra_env), capture_output=True, text=True, timeout=300)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    return proc.stdout


def max_diff(a: Path, b: Path) -> float:
    (_, ta), (_, tb) = weights(a), weights(b)
    assert ta.keys() == tb.keys()
    return max(float((ta[k].float() - tb[k].float()).abs().max()) for k in ta)


def close_rows(a: list[dict], b: list[dict], rel: float = 1e-5) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert rb[k] == pytest.approx(ra[k], rel=rel, abs=1e-7), (k, ra, rb)
            else:
                assert ra[k] == rb[k], k


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_conversations(tmp_path_factory.mktemp("data") / "convs.jsonl", n=72)


def settings(data, algorithm: str, **extra) -> list[str]:
    # global_batch_size: the same rows per optimizer step whatever the world size
    return tiny_overrides(data, algorithm=algorithm, **{"trainer.global_batch_size": 8,
                                                        "decode.enabled": "false", **extra})


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """One process per algorithm: the reference."""
    out = {}
    for algorithm in ("medusa", "eagle3"):
        where = tmp_path_factory.mktemp(f"single-{algorithm}")
        ok(one_process(settings(data, algorithm, **{"hydra.run.dir": where / "run"}), where))
        out[algorithm] = where / "run"
    return out


def only_run_dir(cwd: Path) -> Path:
    """The one run directory a launch made under ``cwd/outputs`` (Hydra's default naming)."""
    dirs = [p for p in (cwd / "outputs").glob("*/*") if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.mark.parametrize("algorithm", ["medusa", "eagle3"])
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_train_what_one_process_trains(algorithm, mode, data, single, tmp_path):
    extra = {"trainer.distributed": mode, "trainer.device": "auto"}
    if mode == "ddp" and algorithm == "medusa":
        extra["tracker.mode"] = "offline"  # one W&B run, opened by rank 0
    out = ok(torchrun(settings(data, algorithm, **extra), tmp_path))
    run = only_run_dir(tmp_path)  # rank 0 named it; rank 1 made none of its own
    ref = single[algorithm]
    s, r = summary(run), summary(ref)
    assert s["status"] == "completed" and s["checklist"]["steps_match"]
    assert s["checklist"]["world_size"] == 2 and r["checklist"]["world_size"] == 1
    assert s["checklist"]["global_batch"] == r["checklist"]["global_batch"] == 8
    assert s["checklist"]["grad_accum"] == 1 and r["checklist"]["grad_accum"] == 2
    assert s["fingerprint"] == r["fingerprint"]
    assert s["checklist"]["tokens_trained"] == r["checklist"]["tokens_trained"]
    assert max_diff(run, ref) <= 1e-6
    close_rows(metric_rows(run), metric_rows(ref))
    assert out.count(f"{algorithm} run completed") == 1  # only rank 0 prints the result
    if "tracker.mode" in extra:
        assert len(list((run / "wandb").glob("offline-run-*"))) == 1
        assert s["wandb"]["run_id"]


def wrapper(tmp_path: Path) -> Path:
    """The fault campaign's wrapper as a script torchrun can start."""
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    return script


def test_resume_after_one_rank_is_killed(data, single, tmp_path):
    """SIGKILL of rank 1 after its 3rd backward pass (in step 3, after the checkpoint of step
    2): torchrun stops the job; resuming finishes it with the weights one uninterrupted process
    trains."""
    run = tmp_path / "run"
    args = settings(data, "medusa", **{"hydra.run.dir": run, "trainer.checkpoint_every": 2})
    killed = torchrun(args, tmp_path, script=wrapper(tmp_path), CAMPAIGN_FAULT="rank_step",
                      CAMPAIGN_AT=3, CAMPAIGN_RANK=1)
    assert killed.returncode != 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    assert not (run / "draft.safetensors").exists()
    ok(torchrun([*args, "trainer.resume=true"], tmp_path))
    s = summary(run)
    assert s["status"] == "completed" and s["checklist"]["steps_match"]
    assert max_diff(run, single["medusa"]) <= 1e-6
    close_rows(metric_rows(run), metric_rows(single["medusa"]))


@pytest.mark.parametrize("resume_with", ["one process", "fsdp"])
def test_a_sharded_run_resumes(resume_with, data, single, tmp_path):
    """A sharded EAGLE-3 run killed in step 5 (rank 0) resumes from its step-4 checkpoint, in
    one process or sharded again: the checkpoint holds whole tensors in the single-process
    layout (the sharded AdamW state loads through set_optimizer_state_dict), and the global
    batch (8) is the same, so the end is the uninterrupted single process's."""
    run = tmp_path / "run"
    common = {"hydra.run.dir": run, "trainer.checkpoint_every": 2}
    fsdp = settings(data, "eagle3", **common, **{"trainer.distributed": "fsdp"})
    killed = torchrun(fsdp, tmp_path, script=wrapper(tmp_path), CAMPAIGN_FAULT="rank_step",
                      CAMPAIGN_AT=5, CAMPAIGN_RANK=0)
    assert killed.returncode != 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    if resume_with == "fsdp":
        ok(torchrun([*fsdp, "trainer.resume=true"], tmp_path))
    else:
        ok(one_process([*settings(data, "eagle3", **common), "trainer.resume=true"], tmp_path))
    s = summary(run)
    assert s["checklist"]["world_size"] == (2 if resume_with == "fsdp" else 1)
    assert max_diff(run, single["eagle3"]) <= 1e-6
    close_rows(metric_rows(run), metric_rows(single["eagle3"]))


def test_a_single_process_checkpoint_resumes_sharded(data, single, tmp_path):
    """The other way: one process stopped after its step-4 checkpoint, finished by two FSDP
    ranks (the whole AdamW state is sharded on load)."""
    run = tmp_path / "run"
    common = {"hydra.run.dir": run, "trainer.checkpoint_every": 2}
    one = subprocess.run([sys.executable, "-c", WRAPPER, *settings(data, "eagle3", **common)],
                         cwd=tmp_path, env=env(CAMPAIGN_FAULT="step", CAMPAIGN_AT=9),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode != 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    ok(torchrun([*settings(data, "eagle3", **common, **{"trainer.distributed": "fsdp"}),
                 "trainer.resume=true"], tmp_path))
    assert summary(run)["checklist"]["draft_sharded"] is True
    assert max_diff(run, single["eagle3"]) <= 1e-6


# ------------------------------------------------------------------ launchers and refusals
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_fast(proc: subprocess.CompletedProcess, seconds: float, limit: float = 10.0) -> str:
    err = proc.stderr
    assert proc.returncode == 2, (proc.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err and "error:" in err, err[-3000:]
    assert seconds < limit, f"the refusal took {seconds:.1f} s"
    return err


def timed(cmd, cwd, **extra_env):
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                          timeout=120)
    return proc, time.time() - t0


def test_world_size_without_a_rendezvous_is_refused(data, tmp_path):
    proc, t = timed([sys.executable, "-m", "specbench", *settings(data, "medusa")], tmp_path,
                    WORLD_SIZE="2", RANK="0")
    err = refused_fast(proc, t)
    assert "WORLD_SIZE=2 is set but MASTER_ADDR, MASTER_PORT is not" in err
    assert "torchrun --nproc_per_node 2" in err
    assert not (tmp_path / "outputs").exists()


def test_peers_that_never_arrive_are_refused(data, tmp_path):
    proc, t = timed([sys.executable, "-m", "specbench", *settings(data, "medusa")], tmp_path,
                    WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(free_port()), SPECBENCH_DIST_TIMEOUT_S="3")
    err = refused_fast(proc, t)
    assert "Could not form the process group of WORLD_SIZE=2 processes" in err
    assert "SPECBENCH_DIST_TIMEOUT_S" in err


def test_accelerate_cpu_launch_of_several_processes_is_refused(data, tmp_path):
    """accelerate launch --cpu --num_processes 2 starts ONE process: refused, naming the
    launch that starts two."""
    accelerate = Path(sys.executable).with_name("accelerate")
    proc, t = timed([str(accelerate), "launch", "--num_processes", "2", "--cpu",
                     "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                     "-m", "specbench", *settings(data, "medusa")], tmp_path)
    assert proc.returncode != 0
    assert "accelerate launch --cpu --num_processes 2 starts only one process" in proc.stderr
    assert "accelerate launch --multi_gpu --num_processes 2" in proc.stderr
    assert t < 30  # accelerate's own start-up included


@pytest.mark.parametrize("how", ["accelerate-fsdp", "srun", "submitit-local"])
def test_other_launchers_start_a_world_of_two(how, data, single, tmp_path):
    """accelerate launch --use_fsdp (its FSDP plugin selects FSDP2 sharding), srun (two tasks,
    emulated by SLURM's variables) and the submitit launcher's local executor with two tasks
    all train with world size 2, equal to one process."""
    run = tmp_path / "run"
    args = settings(data, "eagle3", **{"hydra.run.dir": run, "trainer.device": "auto"})
    if how == "submitit-local":
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
        sweep = tmp_path / "sweep"
        ok(one_process(["-m", "hydra/launcher=local", "hydra.launcher.tasks_per_node=2",
                        *[a for a in args if not a.startswith("hydra.run.dir=")],
                        f"hydra.sweep.dir={sweep}"], tmp_path))
        run = sweep / "0-eagle3"
        assert json.loads((sweep / "sweep.json").read_text())["status"] == "completed"
    elif how == "accelerate-fsdp":
        accelerate = Path(sys.executable).with_name("accelerate")
        ok(subprocess.run([str(accelerate), "launch", "--use_fsdp", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no",
                           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                           "-m", "specbench", *args], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=300))
        assert summary(run)["checklist"]["distributed"] == "fsdp"
        assert summary(run)["checklist"]["launcher"] == "torchrun/accelerate"
        assert summary(run)["checklist"]["draft_sharded"] is True
    else:
        port, procs = free_port(), []
        for rank in range(2):
            e = env(SLURM_PROCID=rank, SLURM_LOCALID=rank, SLURM_STEP_NUM_TASKS=2,
                    SLURM_JOB_ID=4242, SLURM_JOB_NODELIST="localhost", MASTER_PORT=port)
            for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR"):
                e.pop(k, None)
            procs.append(subprocess.Popen([sys.executable, "-m", "specbench", *args],
                                          cwd=tmp_path, env=e, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-4000:]
        assert summary(run)["checklist"]["distributed"] == "ddp"
        assert summary(run)["checklist"]["launcher"] == "slurm"
    assert summary(run)["checklist"]["world_size"] == 2
    assert max_diff(run, single["eagle3"]) <= 1e-6


def test_the_feature_cache_built_by_two_ranks_is_one_processs_cache(data, tmp_path):
    """Both ranks ask for the cache at once: one builds it under the lock while the other
    waits, and the cache (manifest and every shard's bytes) equals one process's build."""
    def build(cache_dir, launch):
        args = settings(data, "eagle3", **{"hydra.run.dir": tmp_path / f"run-{cache_dir.name}",
                                           "cache.enabled": "true", "cache.dir": cache_dir,
                                           "trainer.max_steps": 1})
        ok(launch(args, tmp_path))
        [key] = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return {str(p.relative_to(key)): p.read_bytes() for p in key.rglob("*") if p.is_file()}

    two = build(tmp_path / "cache-two", torchrun)
    one = build(tmp_path / "cache-one", one_process)
    assert two.keys() == one.keys() and any(k.endswith(".safetensors") for k in one)
    manifest = [k for k in one if k.endswith("manifest.json")]
    for k in one:
        if k in manifest:
            a, b = json.loads(one[k]), json.loads(two[k])
            drop = ("created", "build_time_s", "built", "host")
            assert {x: v for x, v in a.items() if x not in drop} == \
                {x: v for x, v in b.items() if x not in drop}
        else:
            assert one[k] == two[k], k


def test_launch_environment_rules():
    from specbench import distributed as d
    from specbench.errors import UserError

    assert d.first_slurm_host("gpu[03-05,07],cpu1") == "gpu03"
    assert d.first_slurm_host("node7") == "node7"
    e = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "8",
         "SLURM_JOB_ID": "123", "SLURM_STEP_NODELIST": "a[1-4]"}
    launch = d.launch_from_env(e)
    assert (launch.world, launch.rank, launch.local_rank, launch.launcher) == (8, 3, 1, "slurm")
    assert (e["MASTER_ADDR"], e["MASTER_PORT"]) == ("a1", "20123")
    assert d.launch_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}).world == 1  # sbatch
    assert d.launch_from_env({}).world == 1
    with pytest.raises(UserError, match="RANK=2 is outside 0..1"):
        d.launch_from_env({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "h",
                           "MASTER_PORT": "1"})
    with pytest.raises(UserError, match="FSDP_OFFLOAD_PARAMS"):
        d.launch_from_env({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h",
                           "MASTER_PORT": "1", "ACCELERATE_USE_FSDP": "true",
                           "FSDP_OFFLOAD_PARAMS": "true"})
    shard = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1",
             "ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "NO_SHARD"}
    launch = d.launch_from_env(shard)
    assert launch.fsdp_from_accelerate and not launch.draft_sharded_by_accelerate
