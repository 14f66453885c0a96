"""Issue 10: the fault-injection campaign, kept as tests.

Every fault is injected into a real ``python -m specbench`` (a subprocess; SIGKILL at a known
phase through ``tests/campaign_util.WRAPPER``) or, for damaged files, into the run directory a
run left, and the outcome is checked against the rule: nothing already written is lost, nothing
is trained from garbage, "completed" is only said of a complete run, and an error names one
command that finishes or recovers the run. "Same as uninterrupted" means: summary status
completed, the same draft.safetensors bytes, metrics.jsonl rows equal except
train/tokens_per_s, and no temporary files left. Each subprocess test takes about 10-25 s on 2
idle cores (the two marked slow more); ``-m 'not slow'`` leaves them out.

The full disk is a real one: a 2 MB / 8 MB tmpfs mounted by the test (root), filled by a
wrapper just before the write; where mount is not permitted the checkpoint case raises ENOSPC
from a patched ``save_weights`` instead.

| fault | expected outcome | test |
|---|---|---|
| SIGKILL in data preparation (no checkpoint yet) | the resume command finishes it, same as uninterrupted | passes |
| SIGKILL mid-step (after backward, before optimizer step) | resume: same as uninterrupted | passes |
| SIGKILL inside a checkpoint write (weights staged) | resume: same as uninterrupted, no `.tmp-*` left | passes (was: `checkpoints/.tmp-step-*` left for ever) |
| SIGKILL after a checkpoint's rename, before `latest` moves | resume: same as uninterrupted | passes |
| SIGKILL during the feature-cache build | re-run: one complete cache, no staging dir, same as an uninterrupted cached run | passes |
| SIGKILL during the post-training evaluation | resume: evaluates, same weights/metrics, eval.json, no temp file | passes (was: `.draft.safetensors.tmp` left) |
| the same, as seen while the evaluation runs | summary.json does not say completed before eval/export ran | passes |
| flipped / truncated checkpoint draft.safetensors, trainer_state.pt, state.json (syntax) | resume refused naming the file; deleting that checkpoint (as told) and resuming: same as uninterrupted | passes |
| a changed digit in a checkpoint's state.json | resume refused naming state.json | passes (was: resumed silently with wrong progress) |
| flipped / truncated draft.safetensors, summary.json, config.json, state.json of a completed run | evaluate and export refuse with an `error:` paragraph, no traceback | passes |
| truncated summary.json / config.json when re-running a completed run | refusal naming the file, or a re-run; no traceback | passes (was: JSONDecodeError in sweep.already_completed) |
| flipped / truncated feature-cache shard | training refused naming the shard, nothing trained | passes |
| disk full while writing a checkpoint (weights / trainer state) | error with the space needed and the resume command; no temp files; after freeing space that command finishes, same as uninterrupted | passes (was: SafetensorError / RuntimeError traceback) |
| disk full while building the feature cache | error with the space needed, staging removed | passes |
| feature cache larger than the disk | refused before building, with the size | passes |
| a second process on a busy run dir (first in data preparation) | refused in < 10 s; the first run is untouched and completes | passes |
| a second process on a busy run dir (first mid-training) | the same; the first run's `.hydra/` record unchanged | passes (the app writes `.hydra/` once it holds the lock) |
| two processes on one cache key | one complete cache, both runs same as uninterrupted | passes |
| W&B down (wandb.init raises, tracker.mode=offline) | completed, local files same as uninterrupted, error recorded | passes |
| a failing sweep job (missing data.path) | sweep.json: that job failed with its error, the other completed, status failed, finished set | passes |
| the same fp32 run in two processes | byte-identical draft.safetensors | passes (was: safetensors metadata order random per process) |
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specbench.config import compose
from specbench.errors import UserError
from specbench.trainer import train

from . import campaign_util as cu
from .conftest import tiny_overrides, write_conversations

STEPS = {"trainer.max_steps": 6, "trainer.checkpoint_every": 2, "trainer.eval_every": 100,
         "decode.enabled": "false"}
EVAL = ["decode.enabled=true", "decode.num_prompts=1", "decode.max_new_tokens=8"]


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    return write_conversations(tmp_path_factory.mktemp("data") / "convs.jsonl")


@pytest.fixture(scope="module")
def base(conv):
    return tiny_overrides(conv, **STEPS)


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """An uninterrupted run of ``base`` through the CLI."""
    run = tmp_path_factory.mktemp("ref") / "run"
    proc = cu.specbench([*base, f"hydra.run.dir={run}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def cached_reference(base, tmp_path_factory):
    """An uninterrupted run of ``base`` trained from a feature cache, through the CLI."""
    root = tmp_path_factory.mktemp("refc")
    proc = cu.specbench([*base, "cache.enabled=true", f"cache.dir={root / 'cache'}",
                         f"hydra.run.dir={root / 'run'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


def killed(base, run, fault, at, *extra):
    proc = cu.specbench([*base, *extra, f"hydra.run.dir={run}"], fault, at)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])
    return proc


def finished_by_resume(run):
    proc = cu.recover(run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# ------------------------------------------------------------------------------ SIGKILL


def test_kill_in_data_preparation_is_finished_by_the_resume_command(base, reference, tmp_path):
    run = tmp_path / "run"
    killed(base, run, "data", 1)
    assert not (run / "checkpoints").exists()
    finished_by_resume(run)
    cu.assert_same_end_state(run, reference)


def test_kill_mid_step_is_finished_by_resume(base, reference, tmp_path):
    run = tmp_path / "run"
    killed(base, run, "step", 5)  # step 5: after the checkpoint of step 4
    assert (run / "checkpoints" / "step-0000004").is_dir() and not (run / "summary.json").exists()
    finished_by_resume(run)
    cu.assert_same_end_state(run, reference)


def test_kill_inside_a_checkpoint_write_is_finished_by_resume(base, reference, tmp_path):
    run = tmp_path / "run"
    killed(base, run, "ckpt_weights", 2)  # the checkpoint of step 4: weights staged only
    assert not (run / "checkpoints" / "step-0000004").exists()
    finished_by_resume(run)
    cu.assert_same_end_state(run, reference)


def test_kill_before_the_latest_pointer_moves_is_finished_by_resume(base, reference, tmp_path):
    run = tmp_path / "run"
    killed(base, run, "ckpt_latest", 2)  # step-4 renamed into place, latest still says step-2
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    finished_by_resume(run)
    cu.assert_same_end_state(run, reference)


def test_kill_during_the_feature_cache_build_leaves_one_good_cache(base, cached_reference,
                                                                  tmp_path):
    cache = tmp_path / "cache"
    over = ["cache.enabled=true", f"cache.dir={cache}"]
    run = tmp_path / "run"
    killed(base, run, "cache", 1, *over)  # the train shard written, the eval shard not
    assert not [d for d in cache.iterdir() if not d.name.startswith(".")]  # nothing complete
    # nothing was trained yet: the original command (a fresh start) finishes the run
    proc = cu.specbench([*base, *over, f"hydra.run.dir={run}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    cu.assert_same_end_state(run, cached_reference)
    assert cu.temp_files(cache) == []
    built = [d for d in cache.iterdir() if not d.name.startswith(".")]
    assert len(built) == 1 and (built[0] / "manifest.json").is_file()


@pytest.mark.slow  # > 20 s: two CLI runs and a decoding evaluation
def test_kill_during_the_evaluation_is_finished_by_resume(base, reference, tmp_path):
    run = tmp_path / "run"
    killed(base, run, "eval", 3, *EVAL)  # the third decoding of the one prompt
    assert not (run / "eval.json").exists()
    finished_by_resume(run)
    assert (run / "eval.json").is_file()
    s = cu.summary(run)
    assert s["status"] == "completed"
    assert cu.same_weights(run, reference, ignore=("fingerprint",))  # eval settings are in it
    assert cu.metric_rows(run) == cu.metric_rows(reference)
    assert cu.temp_files(run) == []


def test_summary_does_not_say_completed_while_the_evaluation_runs(conv, tmp_path):
    run = tmp_path / "run"
    seen = []
    train(compose(tiny_overrides(conv, **{"trainer.max_steps": 2})), run,
          after=lambda tracker: seen.append(cu.summary(run)["status"]))
    assert seen and seen[0] != "completed"


def test_publish_weights_leaves_no_temp_file_when_republishing(tmp_path):
    from specbench.checkpoint import publish_weights

    ckpt = tmp_path / "step-0000001"
    ckpt.mkdir()
    (ckpt / "draft.safetensors").write_bytes(b"weights")
    dest = tmp_path / "draft.safetensors"
    publish_weights(ckpt, dest)
    publish_weights(ckpt, dest)  # what a resume that finishes the run does
    assert dest.read_bytes() == b"weights"
    assert not (tmp_path / ".draft.safetensors.tmp").exists()


# ------------------------------------------------------------------------ damaged files


def flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = min(len(data) - 1, int(len(data) * where))
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def inproc(conv, tmp_path_factory):
    """In-process runs (fast): an uninterrupted one and one stopped after the checkpoint of
    step 4 (checkpoints step-2 and step-4)."""
    root = tmp_path_factory.mktemp("inproc")
    over = tiny_overrides(conv, **STEPS)
    train(compose(over), root / "full")
    train(compose(over), root / "part", stop_after_steps=4)
    return over, root / "full", root / "part"


DAMAGE = {
    "weights-flipped": ("draft.safetensors", flip),
    "weights-truncated": ("draft.safetensors", truncate),
    "trainer-state-flipped": ("trainer_state.pt", flip),
    "trainer-state-truncated": ("trainer_state.pt", truncate),
    "state-json-truncated": ("state.json", truncate),
    "state-json-not-text": ("state.json", lambda p: flip(p, 0.0)),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_refused_and_the_message_recovers(inproc, tmp_path, case):
    over, full, part = inproc
    run = tmp_path / "run"
    shutil.copytree(part, run)
    name, damage = DAMAGE[case]
    ckpt = run / "checkpoints" / "step-0000004"
    damage(ckpt / name)
    rows_before = (run / "metrics.jsonl").read_text()
    with pytest.raises(UserError) as err:
        train(compose(over + ["trainer.resume=true"]), run)
    text = str(err.value)
    assert str(ckpt) in text and "delete" in text.lower(), text
    assert (run / "metrics.jsonl").read_text() == rows_before  # nothing trained from garbage
    assert not (run / "draft.safetensors").exists()
    shutil.rmtree(ckpt)  # what the message says
    assert train(compose(over + ["trainer.resume=true"]), run)["status"] == "completed"
    cu.assert_same_end_state(run, full)


def test_a_changed_value_in_state_json_is_not_resumed_from(inproc, tmp_path):
    over, full, part = inproc
    run = tmp_path / "run"
    shutil.copytree(part, run)
    state = run / "checkpoints" / "step-0000004" / "state.json"
    text = state.read_text()
    assert '"step_in_epoch": 4' in text
    state.write_text(text.replace('"step_in_epoch": 4', '"step_in_epoch": 5'))  # one bit: 4^1
    with pytest.raises(UserError, match=r"state\.json does not match the sha256 recorded in it"):
        train(compose(over + ["trainer.resume=true"]), run)


RUN_DAMAGE = {
    "weights-flipped": ("draft.safetensors", flip),
    "weights-truncated": ("draft.safetensors", truncate),
    "summary-truncated": ("summary.json", truncate),
    "config-truncated": ("config.json", truncate),
    "config-not-text": ("config.json", lambda p: flip(p, 0.0)),
    "checkpoint-state-truncated": ("checkpoints/step-0000006/state.json", truncate),
}


@pytest.mark.parametrize("tool", ["evaluate", "export"])
@pytest.mark.parametrize("case", sorted(RUN_DAMAGE))
def test_evaluate_and_export_refuse_a_damaged_run(inproc, tmp_path, capsys, case, tool):
    from specbench import evaluate, export

    _, full, _ = inproc
    run = tmp_path / "run"
    shutil.copytree(full, run)
    name, damage = RUN_DAMAGE[case]
    damage(run / name)
    if tool == "evaluate":
        rc = evaluate.main([str(run), "--num-prompts", "1", "--max-new-tokens", "4",
                            "--device", "cpu", "--tracker", "disabled"])
    else:
        rc = export.main([str(run), "--format", "vllm", "--out", str(tmp_path / "export")])
    err = capsys.readouterr().err
    if case == "summary-truncated" and tool == "export" and rc == 0:
        return  # export does not need summary.json; the weights were checked
    assert rc == 2 and "error:" in err, err
    assert Path(name).name in err, err
    assert not (tmp_path / "export").exists()
    assert not list(run.glob("eval-*.json"))


@pytest.mark.parametrize("name", ["summary.json", "config.json"])
def test_rerunning_a_run_with_a_damaged_record_is_no_traceback(inproc, tmp_path, name):
    from omegaconf import OmegaConf

    from specbench.sweep import already_completed

    over, full, _ = inproc
    run = tmp_path / "run"
    shutil.copytree(full, run)
    truncate(run / name)
    resolved = OmegaConf.to_container(compose(over), resolve=True, enum_to_str=True)
    try:
        already_completed(run, resolved)  # "not completed" (False) is fine too
    except UserError as err:
        assert name in str(err) and "hydra.run.dir" in str(err), str(err)


@pytest.mark.parametrize("damage", [flip, truncate], ids=["flipped", "truncated"])
def test_a_damaged_cache_shard_is_never_trained_on(conv, tmp_path, damage):
    over = tiny_overrides(conv, **STEPS, **{"cache.enabled": "true",
                                            "cache.dir": str(tmp_path / "cache")})
    train(compose(over), tmp_path / "first")
    shard = next((tmp_path / "cache").glob("*/train-00000.safetensors"))
    damage(shard)
    with pytest.raises(UserError, match="train-00000.safetensors") as err:
        train(compose(over), tmp_path / "second")
    assert "cache.enabled=false" in str(err.value) or "Delete" in str(err.value)
    assert not (tmp_path / "second" / "metrics.jsonl").exists()
    assert not (tmp_path / "second" / "checkpoints").exists()


# -------------------------------------------------------------------------------- disks


@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of the given size; yields a factory, unmounts at the end."""
    mounted = []

    def make(size: str) -> Path | None:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True)
        if proc.returncode != 0:
            return None
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("leave", [20_000, 100_000], ids=["in-weights", "in-trainer-state"])
def test_disk_full_while_writing_a_checkpoint(base, reference, small_disk, leave):
    disk = small_disk("2m")
    if disk is None:  # mount not permitted here: ENOSPC from the write itself
        run = Path(os.environ.get("TMPDIR", "/tmp")) / f"campaign-{os.getpid()}-{leave}"
        shutil.rmtree(run, ignore_errors=True)
        proc = cu.specbench([*base, f"hydra.run.dir={run}"], "enospc_ckpt", 2)
        filler = None
    else:
        run, filler = disk / "run", disk / "filler"
        proc = cu.specbench([*base, f"hydra.run.dir={run}"], "fill_ckpt", 2,
                            CAMPAIGN_FILL=filler, CAMPAIGN_LEAVE=leave)
    err = cu.clean_refusal(proc)
    assert "disk filled up" in err and "a checkpoint takes about" in err, err
    assert cu.temp_files(run) == []
    assert (run / "checkpoints" / "step-0000002").is_dir()  # the earlier checkpoint is intact
    cmd = cu.named_command(err)
    assert cmd is not None, err
    if filler is not None:
        filler.unlink()  # the user frees space
    proc = cu.run_named_command(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cu.assert_same_end_state(run, reference)


def test_disk_full_while_building_the_feature_cache(base, small_disk, tmp_path):
    disk = small_disk("8m")
    if disk is None:
        pytest.skip("mount not permitted; tests/test_cache_faults.py covers ENOSPC by patching")
    run = tmp_path / "run"
    proc = cu.specbench([*base, "cache.enabled=true", f"cache.dir={disk / 'cache'}",
                         f"hydra.run.dir={run}"], "fill_cache", 1,
                        CAMPAIGN_FILL=disk / "filler", CAMPAIGN_LEAVE=1_000_000)
    err = cu.clean_refusal(proc)
    assert "No space left on device" in err and "it needs about 4.7 MB" in err, err
    assert "free now" in err and "cache.enabled=false" in err
    assert cu.temp_files(disk) == []
    assert [p.name for p in (disk / "cache").iterdir() if not p.name.startswith(".lock-")] == []


def test_a_feature_cache_larger_than_the_disk_is_refused_before_building(base, small_disk,
                                                                        tmp_path):
    disk = small_disk("2m")
    if disk is None:
        pytest.skip("mount not permitted")
    proc = cu.specbench([*base, "cache.enabled=true", f"cache.dir={disk / 'cache'}",
                         f"hydra.run.dir={tmp_path / 'run'}"])
    err = cu.clean_refusal(proc)
    assert "would take about 4.7 MB" in err and "free there" in err, err
    assert not (disk / "cache").exists() or cu.temp_files(disk) == []


# ---------------------------------------------------------------------- two processes


BUSY = {
    # the first process holds the run dir in data preparation: only Hydra's files exist yet
    "in-data-preparation": ("hold", 1, ()),
    # the first process holds it mid-training, about to write its second checkpoint
    "mid-training": ("hold_ckpt", 2, ()),
}


@pytest.mark.parametrize("phase", [pytest.param(k, marks=v[2]) for k, v in BUSY.items()])
def test_a_second_process_on_a_busy_run_dir_is_refused_and_harms_nothing(base, reference,
                                                                        tmp_path, phase):
    fault, at, _ = BUSY[phase]
    run, signal, release = tmp_path / "run", tmp_path / "holding", tmp_path / "go"
    first = cu.start([*base, f"hydra.run.dir={run}"], fault, at, CAMPAIGN_SIGNAL=signal,
                     CAMPAIGN_RELEASE=release)
    try:
        t0 = time.time()
        while not signal.exists() and first.poll() is None and time.time() - t0 < 120:
            time.sleep(0.05)
        assert signal.exists(), first.communicate()[1][-3000:]
        record = {p: (run / ".hydra" / p).read_text() for p in ("overrides.yaml", "config.yaml")}
        t0 = time.time()
        second = cu.specbench([*base, "trainer.max_steps=3", f"hydra.run.dir={run}"])
        assert time.time() - t0 < 10 + 8  # refused at once (+ the interpreter's start-up)
        err = cu.clean_refusal(second)
        assert f"Another specbench process (pid {first.pid})" in err, err
        assert {p: (run / ".hydra" / p).read_text() for p in record} == record
    finally:
        release.write_text("go")
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-3000:]
    cu.assert_same_end_state(run, reference)


@pytest.mark.slow  # > 20 s: two CLI runs at once (and the shared cached reference)
def test_two_processes_on_one_cache_key_make_one_good_cache(base, cached_reference, tmp_path):
    cache = tmp_path / "cache"
    procs = [cu.start([*base, "cache.enabled=true", f"cache.dir={cache}",
                       f"hydra.run.dir={tmp_path / f'run{i}'}"]) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    for i in range(2):
        cu.assert_same_end_state(tmp_path / f"run{i}", cached_reference)
    built = [d for d in cache.iterdir() if not d.name.startswith(".")]
    assert len(built) == 1 and (built[0] / "manifest.json").is_file()
    assert cu.temp_files(cache) == []


# ------------------------------------------------------------------------- W&B, sweeps


def test_wandb_down_leaves_complete_local_files(base, reference, tmp_path):
    run = tmp_path / "run"
    over = [o for o in base if not o.startswith("tracker.mode=")] + ["tracker.mode=offline"]
    proc = cu.specbench([*over, f"hydra.run.dir={run}"], "wandb_init")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "W&B could not start" in proc.stderr
    cu.assert_same_end_state(run, reference)
    assert "W&B is down" in cu.summary(run)["wandb"]["error"]


def test_a_failing_sweep_job_is_recorded_and_the_other_completes(base, conv, tmp_path):
    root = tmp_path / "sweep"
    over = [o for o in base if not o.startswith("data.path=")]
    proc = cu.specbench(["-m", f"hydra.sweep.dir={root}", *over,
                         f"data.path={tmp_path / 'missing.jsonl'},{conv}"])
    assert proc.returncode != 0
    state = json.loads((root / "sweep.json").read_text())
    assert state["status"] == "failed" and state["finished"], state
    bad, good = state["jobs"]
    assert bad["status"] == "failed" and "missing.jsonl" in bad["error"], bad
    assert good["status"] == "completed" and good["run_status"] == "completed", good
    assert cu.summary(root / good["dir"])["status"] == "completed"


# ------------------------------------------------------------------------ reproducibility


SAVE = ("import sys; from specbench.checkpoint import save_weights; import torch\n"
        "save_weights(sys.argv[1], {'w': torch.arange(4.0)}, "
        "{'step': 6, 'algorithm': 'medusa', 'fingerprint': 'abc'})")


def test_weights_file_bytes_are_reproducible(tmp_path):
    outs = []
    for i in range(5):  # 3 keys: 6 orders; 5 equal files by chance: p = 1/1296
        path = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", SAVE, str(path)], check=True, cwd=cu.ROOT,
                       env=cu.env())
        outs.append(path.read_bytes())
    assert len(set(outs)) == 1
