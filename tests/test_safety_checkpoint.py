"""Issue 10: checkpoints are verified (sha256) when loaded, damaged files give a message naming
them, ``checkpoints/latest`` cannot point outside the run, and ``staged_dir`` replaces only a
directory it wrote, leaving nothing behind when a write fails."""

from __future__ import annotations

import json
import os

import pytest
import torch

from specbench import checkpoint as ckpt
from specbench.config import compose
from specbench.errors import UserError

from .conftest import tiny_overrides


def _opt():
    p = torch.nn.Parameter(torch.ones(64))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(64)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return p, opt, sched


def _save(run, step=1):
    p, opt, sched = _opt()
    return ckpt.save_checkpoint(run, step, {"w": p.detach() * step}, opt, sched, {"epoch": 0})


def _flip_last_byte(path):
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))


def test_checksums_are_recorded_and_progress_is_unchanged(tmp_path):
    path = _save(tmp_path)
    state = json.loads((path / "state.json").read_text())
    assert set(state["sha256"]) == {"draft.safetensors", "trainer_state.pt"}
    assert state["sha256"]["draft.safetensors"] == ckpt.file_sha256(path / "draft.safetensors")
    assert (path / ckpt.CHECKPOINT_MARKER).is_file()
    _, _, progress = ckpt.load_checkpoint(path)
    assert progress == {"step": 1, "epoch": 0}  # the checksums are not progress


@pytest.mark.parametrize("name", ["draft.safetensors", "trainer_state.pt"])
def test_flipped_bytes_are_refused_naming_the_file(tmp_path, name):
    path = _save(tmp_path)
    _flip_last_byte(path / name)
    with pytest.raises(UserError) as err:
        ckpt.load_checkpoint(path)
    msg = str(err.value)
    assert str(path / name) in msg and "sha256" in msg
    assert "earlier checkpoint" in msg and "delete" in msg.lower()


def _legacy(path):
    """A checkpoint as saved before checksums were recorded."""
    state = json.loads((path / "state.json").read_text())
    del state["sha256"], state["state_sha256"]
    (path / "state.json").write_text(json.dumps(state))
    return path


def test_old_checkpoints_without_checksums_still_load(tmp_path):
    path = _legacy(_save(tmp_path, 3))
    weights, state, progress = ckpt.load_checkpoint(path)
    assert progress == {"step": 3, "epoch": 0} and weights["w"].shape == (64,)
    assert "optimizer" in state


@pytest.mark.parametrize("name,damage,expect", [
    ("draft.safetensors", b"\x00\x01", "cannot be read as safetensors"),
    ("trainer_state.pt", b"not a zip", "cannot be loaded"),
    ("state.json", b'{"step": 3, "epo', "not valid JSON"),
    ("state.json", b"\xff\xfe\x00binary", "not text"),
    ("state.json", b"[1, 2]", "not an object"),
])
def test_truncated_or_corrupt_files_name_the_file(tmp_path, name, damage, expect):
    path = _legacy(_save(tmp_path))
    (path / name).write_bytes(damage)
    with pytest.raises(UserError) as err:
        ckpt.load_checkpoint(path)
    assert str(path / name) in str(err.value) and expect in str(err.value)


def test_truncated_file_with_checksum_is_refused(tmp_path):
    path = _save(tmp_path)
    data = (path / "draft.safetensors").read_bytes()
    (path / "draft.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="draft.safetensors does not match the sha256"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("pointer", ["../../outside", "/etc", "step-1/../../x", "..", ""])
def test_latest_pointing_outside_the_run_is_refused(tmp_path, pointer):
    run = tmp_path / "run"
    _save(run)
    (tmp_path / "outside").mkdir()
    (run / "checkpoints" / "latest").write_text(pointer + "\n")
    with pytest.raises(UserError, match="must name one of this run's own step-N"):
        ckpt.latest_checkpoint(run)


def test_symlinked_checkpoint_outside_the_run_is_ignored_or_refused(tmp_path):
    run = tmp_path / "run"
    first = _save(run, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, run / "checkpoints" / "step-0000009")
    (run / "checkpoints" / "latest").unlink()
    assert ckpt.latest_checkpoint(run) == first  # the symlink is not a checkpoint
    (run / "checkpoints" / "latest").write_text("step-0000009\n")
    with pytest.raises(UserError, match="must name one of this run's own"):
        ckpt.latest_checkpoint(run)


def test_resume_from_a_flipped_checkpoint_is_a_clear_error(tmp_path, conv_file):
    from specbench.trainer import train

    over = tiny_overrides(conv_file, **{"trainer.max_steps": 3})
    run = tmp_path / "run"
    train(compose(over), run, stop_after_steps=1)
    latest = ckpt.latest_checkpoint(run)
    _flip_last_byte(latest / "trainer_state.pt")
    with pytest.raises(UserError) as err:
        train(compose(over + ["trainer.resume=true"]), run)
    assert str(latest / "trainer_state.pt") in str(err.value)


# --------------------------------------------------------------------------------- staged_dir


def test_staged_dir_refuses_unmarked_directories_files_and_parents(tmp_path):
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="was not written by specbench"):
        with ckpt.staged_dir(mine) as tmp:
            (tmp / "x").write_text("new")
    assert (mine / "precious.txt").read_text() == "keep me"
    afile = tmp_path / "summary.json"
    afile.write_text("{}")
    with pytest.raises(UserError, match="is a file"):
        with ckpt.staged_dir(afile):
            pass
    assert afile.read_text() == "{}"
    run = tmp_path / "a" / "run"
    run.mkdir(parents=True)
    (tmp_path / "a" / ckpt.DIR_MARKER).write_text("")  # even a marked parent of a run
    with pytest.raises(UserError, match="is \\(or contains\\)"):
        with ckpt.staged_dir(tmp_path / "a", protect=[run]):
            pass
    assert run.is_dir()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


def test_staged_dir_replaces_its_own_and_empty_directories(tmp_path):
    final = tmp_path / "out"
    final.mkdir()  # empty: nothing to lose
    with ckpt.staged_dir(final) as tmp:
        (tmp / "a").write_text("1")
    with ckpt.staged_dir(final) as tmp:  # written by staged_dir: has the marker
        (tmp / "a").write_text("2")
    assert (final / "a").read_text() == "2" and (final / ckpt.DIR_MARKER).is_file()
    with pytest.raises(UserError, match="no .specbench-export file"):  # another kind's marker
        with ckpt.staged_dir(final, marker=".specbench-export"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_write_or_swap_leaves_no_temp_dirs_and_keeps_the_old(tmp_path, monkeypatch):
    final = tmp_path / "out"
    with ckpt.staged_dir(final) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(OSError, match="No space"):
        with ckpt.staged_dir(final) as tmp:
            raise OSError(28, "No space left on device")
    real_replace, calls = os.replace, []

    def failing_second_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new copy into place
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", failing_second_replace)
    with pytest.raises(OSError):
        with ckpt.staged_dir(final) as tmp:
            (tmp / "a").write_text("new")
    monkeypatch.undo()
    assert (final / "a").read_text() == "old"  # rolled back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_checkpoint_save_leaves_no_temp_files(tmp_path, monkeypatch):
    _save(tmp_path, 1)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", disk_full)  # state.json, written last, fails
    with pytest.raises(OSError):
        _save(tmp_path, 2)
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000001"]
    assert sorted(p.name for p in (root / "step-0000001").iterdir()) == [
        ckpt.CHECKPOINT_MARKER, "draft.safetensors", "state.json", "trainer_state.pt"]


def test_a_changed_value_in_state_json_is_refused(tmp_path):
    path = _save(tmp_path, 4)
    state = path / "state.json"
    state.write_text(state.read_text().replace('"epoch": 0', '"epoch": 1'))
    with pytest.raises(UserError, match="state.json does not match the sha256 recorded in it"):
        ckpt.load_checkpoint(path)


def test_staging_dirs_left_by_a_kill_are_removed_by_the_next_save(tmp_path):
    _save(tmp_path, 1)
    root = tmp_path / "checkpoints"
    for name in (".tmp-step-0000002-abc", ".old-step-0000001-xyz"):
        (root / name).mkdir()
        (root / name / "draft.safetensors").write_bytes(b"partial")
    _save(tmp_path, 2)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000001", "step-0000002"]


def test_publishing_the_same_weights_again_leaves_no_temp_file(tmp_path):
    path = _save(tmp_path, 1)
    dest = tmp_path / "draft.safetensors"
    ckpt.publish_weights(path, dest)
    ckpt.publish_weights(path, dest)  # a resume that finishes the run does this
    assert dest.read_bytes() == (path / "draft.safetensors").read_bytes()
    assert not (tmp_path / ".draft.safetensors.tmp").exists()


def test_a_full_disk_in_torch_save_is_an_enospc_oserror(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    _save(tmp_path, 1)

    def write_failed(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ckpt.torch, "save", write_failed)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 20, 10 << 20, 4096))
    with pytest.raises(OSError) as err:
        _save(tmp_path, 2)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000001"]


def test_weights_files_are_byte_identical_across_processes(tmp_path):
    import subprocess
    import sys

    code = ("import sys, torch; from specbench.checkpoint import save_weights; "
            "save_weights(sys.argv[1], {'b': torch.ones(3), 'a': torch.arange(5)}, "
            "{'step': 6, 'algorithm': 'medusa', 'fingerprint': 'abc', 'x': 1})")
    outs = []
    for i in range(4):  # 4 metadata keys: 24 orders, all 4 equal by chance: p < 1e-4
        path = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        outs.append(path.read_bytes())
    assert len(set(outs)) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w0.safetensors"), "pt") as f:
        assert f.metadata() == {"step": "6", "algorithm": "medusa", "fingerprint": "abc",
                                "x": "1"}
        assert f.get_tensor("a").tolist() == [0, 1, 2, 3, 4]
