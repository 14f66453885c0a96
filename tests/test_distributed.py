"""Several processes (torchrun, gloo, two CPU processes): DDP and FSDP2 train the same draft as
one process at the same global batch, write one set of files, resume after a rank is killed,
and a launch that cannot work is refused in seconds with a message naming the fix."""

from __future__ import annotations

import subprocess
import sys
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


def test_fsdp_checkpoint_resumes_in_one_process(data, single, tmp_path):
    """A sharded EAGLE-3 run killed in step 5 (rank 0) resumes from its step-4 checkpoint in
    ONE process: the checkpoint holds whole tensors in the single-process layout, and the
    global batch (8) is the same, so the end is the uninterrupted single process's."""
    run = tmp_path / "run"
    common = {"hydra.run.dir": run, "trainer.checkpoint_every": 2}
    killed = torchrun(settings(data, "eagle3", **common, **{"trainer.distributed": "fsdp"}),
                      tmp_path, script=wrapper(tmp_path), CAMPAIGN_FAULT="rank_step",
                      CAMPAIGN_AT=5, CAMPAIGN_RANK=0)
    assert killed.returncode != 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    ok(one_process([*settings(data, "eagle3", **common), "trainer.resume=true"], tmp_path))
    assert summary(run)["checklist"]["world_size"] == 1
    assert max_diff(run, single["eagle3"]) <= 1e-6
