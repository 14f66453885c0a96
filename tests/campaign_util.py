"""Helpers of the fault campaign (tests/test_campaign.py): run ``python -m specbench`` in a
subprocess with one fault armed, and compare run directories.

A fault is armed by the environment: ``CAMPAIGN_FAULT`` names it and ``CAMPAIGN_AT`` says at
which call of the patched function it fires (1 = the first). The subprocess runs ``WRAPPER``
(``python -c``), which patches one specbench function and then calls
``specbench.__main__.main`` with the given overrides, so the fault lands in a known phase
instead of after a guessed sleep.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from specbench.rundir import resume_command

ROOT = Path(__file__).parents[1]

WRAPPER = r'''
import os, sys, time
from pathlib import Path

fault = os.environ.get("CAMPAIGN_FAULT", "")
at = int(os.environ.get("CAMPAIGN_AT", "1"))
calls = {"n": 0}


def fire():
    calls["n"] += 1
    return calls["n"] == at


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), 9)


def wrap(module, name, before=None, after=None):
    real = getattr(module, name)

    def patched(*args, **kwargs):
        if before is not None:
            before(*args, **kwargs)
        out = real(*args, **kwargs)
        if after is not None:
            after(*args, **kwargs)
        return out

    setattr(module, name, patched)


def fill_disk(*args, **kwargs):
    """Leave CAMPAIGN_LEAVE bytes free on the disk of CAMPAIGN_FILL (another process fills it)."""
    if not fire():
        return
    import shutil
    filler = Path(os.environ["CAMPAIGN_FILL"])
    leave = int(os.environ.get("CAMPAIGN_LEAVE", "0"))
    with open(filler, "ab") as f:
        while True:
            free = shutil.disk_usage(filler.parent).free
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(65536, max(1, free - leave)))
                f.flush()
            except OSError:
                break


def hold(*args, **kwargs):
    """Say we hold the run directory, then wait until told to go on."""
    if not fire():
        return
    Path(os.environ["CAMPAIGN_SIGNAL"]).write_text(str(os.getpid()))
    release = Path(os.environ["CAMPAIGN_RELEASE"])
    t0 = time.time()
    while not release.exists() and time.time() - t0 < 120:
        time.sleep(0.05)


kill = lambda *a, **k: die() if fire() else None  # noqa: E731

if fault == "data":  # SIGKILL during data preparation
    import specbench.data
    wrap(specbench.data, "build_dataset", after=kill)
elif fault == "rank_step":  # SIGKILL of one rank (CAMPAIGN_RANK) after a backward pass
    import accelerate
    if os.environ.get("RANK") == os.environ.get("CAMPAIGN_RANK", "1"):
        wrap(accelerate.Accelerator, "backward", after=kill)
elif fault == "signal":  # a scheduler's signal (CAMPAIGN_SIGNAL, default TERM) after a
    # backward pass, sent to this process or (CAMPAIGN_SIGNAL_TO=parent) to its launcher
    import signal
    import accelerate
    sig = getattr(signal, "SIG" + os.environ.get("CAMPAIGN_SIGNAL", "TERM"))
    to = os.getppid() if os.environ.get("CAMPAIGN_SIGNAL_TO") == "parent" else os.getpid()
    if os.environ.get("RANK", "0") in ("", "0"):
        wrap(accelerate.Accelerator, "backward", after=lambda *a, **k: os.kill(to, sig)
             if fire() else None)
elif fault == "step":  # SIGKILL after a backward pass, before the optimizer step
    import accelerate
    wrap(accelerate.Accelerator, "backward", after=kill)
elif fault == "ckpt_weights":  # SIGKILL in a checkpoint write: weights staged, nothing else
    import specbench.checkpoint
    wrap(specbench.checkpoint, "save_weights", after=kill)
elif fault == "ckpt_latest":  # SIGKILL after the checkpoint's rename, before `latest` moves on
    import specbench.checkpoint
    real = specbench.checkpoint.atomic_write_text

    def write(path, text):
        if Path(path).name == "latest" and fire():
            die()
        return real(path, text)

    specbench.checkpoint.atomic_write_text = write
elif fault == "cache":  # SIGKILL during the feature-cache build, after the first shard
    import specbench.feature_cache
    wrap(specbench.feature_cache, "_save_shard", after=kill)
elif fault == "eval":  # SIGKILL during the post-training decoding evaluation
    import specbench.evaluate
    wrap(specbench.evaluate, "speculative_generate", after=kill)
elif fault == "fill_ckpt":  # the disk fills up just before a checkpoint is written
    import specbench.checkpoint
    wrap(specbench.checkpoint, "save_checkpoint", before=fill_disk)
elif fault == "fill_cache":  # the disk fills up just before a cache shard is written
    import specbench.feature_cache
    wrap(specbench.feature_cache, "_save_shard", before=fill_disk)
elif fault == "enospc_ckpt":  # no tmpfs: the checkpoint write fails with ENOSPC
    import errno
    import specbench.checkpoint

    def full(*a, **k):
        if fire():
            raise OSError(errno.ENOSPC, "No space left on device")

    wrap(specbench.checkpoint, "save_weights", before=full)
elif fault == "hold":  # hold the run directory (lock taken) at data preparation
    import specbench.data
    wrap(specbench.data, "build_dataset", before=hold)
elif fault == "hold_ckpt":  # hold the run directory mid-training, before a checkpoint
    import specbench.checkpoint
    wrap(specbench.checkpoint, "save_checkpoint", before=hold)
elif fault == "wandb_init":  # W&B is down: wandb.init raises
    import wandb

    def down(*a, **k):
        raise ConnectionError("W&B is down (campaign fault)")

    wandb.init = down
elif fault:
    raise SystemExit(f"unknown CAMPAIGN_FAULT {fault!r}")

from specbench.__main__ import main
sys.argv = ["specbench", *sys.argv[1:]]
main()
'''


def env(**extra) -> dict:
    e = {**os.environ, "SPECBENCH_COMPILE": "0", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
         "PYTHONUNBUFFERED": "1"}
    e.pop("CAMPAIGN_FAULT", None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def command(args, fault: str | None = None) -> list[str]:
    if fault is None:
        return [sys.executable, "-m", "specbench", *args]
    return [sys.executable, "-c", WRAPPER, *args]


def specbench(args, fault: str | None = None, at: int = 1, timeout: int = 300,
              **extra_env) -> subprocess.CompletedProcess:
    """Run ``python -m specbench ARGS`` (with ``fault`` armed at its ``at``-th call)."""
    e = env(**extra_env)
    if fault is not None:
        e.update(CAMPAIGN_FAULT=fault, CAMPAIGN_AT=str(at))
    return subprocess.run(command(args, fault), capture_output=True, text=True, cwd=ROOT,
                          env=e, timeout=timeout)


def start(args, fault: str | None = None, at: int = 1, **extra_env) -> subprocess.Popen:
    e = env(**extra_env)
    if fault is not None:
        e.update(CAMPAIGN_FAULT=fault, CAMPAIGN_AT=str(at))
    return subprocess.Popen(command(args, fault), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=e)


def run_named_command(cmd: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a ``python -m specbench ...`` command as a message prints it (this interpreter)."""
    words = shlex.split(cmd)
    assert words[:3] == ["python", "-m", "specbench"], cmd
    return subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True,
                          cwd=ROOT, env=env(), timeout=timeout)


def recover(run_dir: Path) -> subprocess.CompletedProcess:
    """What a user does after a kill: run the resume command of the run directory."""
    return run_named_command(resume_command(run_dir))


def named_command(message: str) -> str | None:
    """The one ``python -m specbench ...`` command a message names (to its end of line or a
    ``  -- `` aside), or None."""
    i = message.find("python -m specbench ")
    if i < 0:
        return None
    rest = message[i:].splitlines()[0]
    return rest.split("  -- ")[0].strip()


def weights(run_dir: Path) -> tuple[dict, dict]:
    """(metadata, tensors) of a run's draft.safetensors."""
    from safetensors import safe_open

    with safe_open(str(Path(run_dir) / "draft.safetensors"), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def same_weights(a: Path, b: Path, ignore: tuple = ()) -> bool:
    """Equal tensors (bit for bit) and equal metadata, apart from the ``ignore``d keys."""
    (ma, ta), (mb, tb) = weights(a), weights(b)
    ma, mb = ({k: v for k, v in m.items() if k not in ignore} for m in (ma or {}, mb or {}))
    return ma == mb and ta.keys() == tb.keys() and all(
        ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape
        and ta[k].view(-1).view(torch.uint8).equal(tb[k].view(-1).view(torch.uint8))
        for k in ta)


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def metric_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing column."""
    rows = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
            if x.strip()]
    return [{k: v for k, v in r.items() if k != "train/tokens_per_s"} for r in rows]


def temp_files(root: Path) -> list[str]:
    """Leftovers of interrupted atomic writes under ``root``."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.name.startswith((".tmp-", ".old-")) or p.name.endswith(".tmp"))


def assert_same_end_state(run_dir: Path, reference: Path) -> None:
    """The state an uninterrupted run leaves: same weights bytes, completed, same metrics."""
    s = summary(run_dir)
    assert s["status"] == "completed" and s["error"] is None, s["error"]
    assert s["checklist"]["steps_match"]
    assert (Path(run_dir) / "draft.safetensors").read_bytes() == \
        (Path(reference) / "draft.safetensors").read_bytes(), \
        "draft.safetensors differs from the uninterrupted run's"
    assert metric_rows(run_dir) == metric_rows(reference)
    assert not temp_files(run_dir), temp_files(run_dir)


def clean_refusal(proc: subprocess.CompletedProcess) -> str:
    """A refusal the way specbench should refuse: non-zero, an ``error:`` paragraph, no
    traceback. Returns stderr."""
    err = proc.stderr
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in err, err[-4000:]
    assert "error:" in err, err[-4000:]
    return err
