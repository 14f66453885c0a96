"""specbench.io: atomic writes, JSON / JSON-lines reading, stable hashes, the cache directory,
file locks; and the modules that must import without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from specbench import io
from specbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- writing

def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.txt"
    io.atomic_write_text(path, "one\n")
    io.atomic_write_text(path, "two\n")
    io.atomic_write_bytes(tmp_path / "b.bin", b"\0\1")
    assert path.read_text() == "two\n" and (tmp_path / "b.bin").read_bytes() == b"\0\1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "a.json"
    io.write_json(path, {"old": 1})
    with pytest.raises(RuntimeError), io.atomic_open(path) as f:
        f.write('{"new": ')
        raise RuntimeError("disk full")
    with pytest.raises(TypeError):  # a value json cannot write fails before any rename
        io.atomic_write_text(path, None)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_writes_get_the_mode_open_would_give(tmp_path):
    mask = os.umask(0o022)
    try:
        path = tmp_path / "summary.json"
        io.write_json(path, {})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~io._umask()  # not mkstemp's 0600


def test_write_json_format(tmp_path):
    io.write_json(tmp_path / "x.json", {"b": 1, "a": Path("/p")})
    assert (tmp_path / "x.json").read_text() == '{\n  "b": 1,\n  "a": "/p"\n}\n'


# ------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("content, message", [
    (None, "x.json is missing. Fix it."),
    (b"\xff\xfe{}", "x.json is not text (binary or corrupt). Fix it."),
    (b'{"a": ', "x.json is not valid JSON (Expecting value: line 1 column 7 (char 6)): "
               "truncated or corrupt. Fix it."),
    (b"[1]", "x.json holds a JSON list, not an object: corrupt. Fix it."),
])
def test_read_json_messages(tmp_path, content, message):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        io.read_json(path, "Fix it.")
    assert str(err.value) == f"{tmp_path}/{message}"


def test_read_json_is_reexported_from_checkpoint():
    from specbench import checkpoint

    assert checkpoint.read_json is io.read_json and checkpoint.write_json is io.write_json


ROWS = '{"step": 1}\n\n{"step": 2}\n'


def test_read_jsonl_drops_a_cut_off_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(ROWS + '{"step": 3, "lo')
    assert io.read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_bytes(ROWS.encode() + b'{"step": 3, "note": "\xc3')  # cut inside a character
    assert io.read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text(ROWS + '{"step": 3}')  # a whole last row without a line end is kept
    assert io.read_jsonl(path)[-1] == {"step": 3}
    path.write_text(ROWS + '{"step": 3, "lo')
    with pytest.raises(UserError, match=r"m.jsonl line 4 is not a JSON row \(cut off: the file "
                                        r"ends in the middle of a row\).* Re-run\.$"):
        io.read_jsonl(path, "Re-run.", cut_off_ok=False)


@pytest.mark.parametrize("content, message", [
    (b'{"step": 1}\n{"st\n{"step": 3}\n', "line 2 is not a JSON row: Unterminated string "
                                          "starting at (column 2). Move it."),
    (b'{"step": 1}\n\n{"step": 2, "n": "\xe9"}\n', "line 3 is not UTF-8 text (bad byte at "
                                                   "offset 31). Move it."),
    (b'{"step": 1}\n12\n', "line 2 is a JSON number, not an object (a row). Move it."),
    (b'{"st\n', "line 1 is not a JSON row: Unterminated string starting at (column 2). "
               "Move it."),  # a last line that ends in a line end was not cut off
])
def test_read_jsonl_names_the_bad_line(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        io.read_jsonl(path, "Move it.")
    assert str(err.value) == f"{path} {message}"


def test_read_jsonl_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"m.jsonl is missing\. Train first\.$"):
        io.read_jsonl(tmp_path / "m.jsonl", "Train first.")


def test_resuming_over_a_cut_off_metrics_row(tmp_path):
    """The tracker of a resumed run keeps the rows up to its checkpoint's step and drops a row
    the killed process left half-written."""
    from specbench.tracking import RunTracker, read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    RunTracker(tmp_path, SimpleNamespace(mode="disabled"), {}, "fp", "medusa", resume_step=2)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 2}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl line 2 is not a JSON row.*move it away"):
        read_metrics(tmp_path / "metrics.jsonl")


# ------------------------------------------------------------------------------- hashing

OBJ = {"b": [1, 2.5, None], "a": {"y": "é", "x": True}}


def test_stable_hash_values_are_pinned():
    # the values the fingerprint / state.json digest (compact) and the feature-cache key / data
    # row keys (json's default separators) had before io.stable_hash
    assert io.stable_hash(OBJ) == \
        "cda39ebe94c15113e73084598895aedb2b9f10e0acc2062a497a742969aae982"
    assert io.stable_hash(OBJ, compact=False) == \
        "e4dfc0a85121cff6b90ec64f865953db567e1c0100b8fa8610ef850f5fd319bd"
    assert io.stable_hash({"p": Path("/a")}) == \
        "dbee4e34d4c0c9aec1d76579a9c2e8c076da52a50be14f0d651fd4fc55aca680"  # default=str
    assert io.canonical_json({"b": 1, "a": "é"}) == '{"a":"\\u00e9","b":1}'
    assert io.canonical_json({"b": 1, "a": "é"}, compact=False, ensure_ascii=False) == \
        '{"a": "é", "b": 1}'


def test_data_hashes_are_pinned():
    from specbench.data import _row_key
    from specbench.data.conversations import content_hash

    rows = [[{"role": "user", "content": "é"}], [{"role": "assistant", "content": "x"}]]
    assert content_hash(rows) == \
        "28a7fcee5f79152da0406fbdceacfe646337dcae6c690435fde154cdcf24e553"
    assert _row_key(OBJ) == io.stable_hash(OBJ, compact=False)


@pytest.mark.parametrize("sweep", ["smollm2-medusa-vs-eagle3", "smollm2-seed-repeat"])
def test_recorded_fingerprints_are_unchanged(sweep):
    """The fingerprint of each recorded run, recomputed from what its summary.json records it
    hashed (controlled variables, dataset sha256, global batch)."""
    summaries = sorted((ROOT / "experiments" / sweep).glob("*/summary.json"))
    assert summaries
    for path in summaries:
        s = json.loads(path.read_text())
        payload = {"controlled": s["controlled"], "global_batch": s["checklist"]["global_batch"],
                   "dataset_sha256": s["checklist"]["dataset_sha256"]}
        assert io.stable_hash(payload)[:12] == s["fingerprint"], path


def test_file_sha256(tmp_path):
    import hashlib

    data = os.urandom((1 << 23) + 5)  # more than one block
    (tmp_path / "f").write_bytes(data)
    assert io.file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- cache, locks

def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "c"))
    assert io.cache_root() == tmp_path / "c"
    monkeypatch.delenv("SPECBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert io.cache_root() == tmp_path / "x" / "specbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert io.cache_root() == Path.home() / ".cache" / "specbench"
    from specbench.embedded import cache_root  # the old import path still works

    assert cache_root is io.cache_root


def test_file_lock_excludes_and_waits(tmp_path, capsys):
    from filelock import FileLock, Timeout

    path = tmp_path / ".lock-key"
    released = threading.Event()

    def hold():
        with io.file_lock(path):
            started.set()
            time.sleep(0.3)
        released.set()

    started = threading.Event()
    with io.file_lock(path):
        with pytest.raises(Timeout):  # another holder (its own open file) cannot take it
            FileLock(str(path)).acquire(timeout=0)
    t = threading.Thread(target=hold)
    t.start()
    started.wait(5)
    with io.file_lock(path, waiting="[specbench] waiting"):
        assert released.is_set()  # got the lock only once the holder let go
    t.join()
    assert "[specbench] waiting" in capsys.readouterr().out


# ------------------------------------------------------------------------------- imports

def test_sweep_and_tracking_import_no_torch():
    code = ("import sys, specbench.sweep, specbench.tracking, specbench.io; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------- damaged run records

@pytest.mark.parametrize("name", ["summary.json", "config.json"])
def test_a_sweep_rerun_over_a_damaged_record_names_it(tmp_path, name):
    from specbench.sweep import already_completed

    (tmp_path / "summary.json").write_text('{"status": "completed"}')
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / name).write_text('{"status": "compl')
    with pytest.raises(UserError, match=rf"{name} is not valid JSON .* holds an earlier run "
                                        r"with a damaged record: move that directory away"):
        already_completed(tmp_path, {})


def test_a_damaged_sweep_json_is_named(tmp_path):
    from specbench.sweep import finish_sweep

    (tmp_path / "sweep.json").write_text('{"jobs": [')
    with pytest.raises(UserError, match=r"sweep.json is not valid JSON .*hydra.sweep.dir"):
        finish_sweep(tmp_path)
