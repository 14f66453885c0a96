"""Feature-cache faults: damaged shards are refused (not trained on), a full disk leaves nothing
behind and says how much is needed, concurrent builders end with one good cache, old caches
without checksums are not reused, and the CLI's --help works."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specbench import feature_cache
from specbench.algorithms import get_algorithm
from specbench.config import compose
from specbench.data import build_dataset
from specbench.errors import UserError
from specbench.target import load_target

from .conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "specbench-cache"))
    return tmp_path / "specbench-cache" / "features"


def _setup(conv_file, *extra):
    cfg = compose(tiny_overrides(conv_file) + list(extra))
    target = load_target(cfg.model, seed=cfg.trainer.seed)
    data = build_dataset(cfg.data, target.tokenizer, cfg.trainer.max_length, verbose=False)
    spec = get_algorithm(cfg.algorithm.name).feature_spec(cfg.algorithm, target.config)
    return cfg, target, data, spec


def _built(conv_file, *extra):
    cfg, target, data, spec = _setup(conv_file, *extra)
    fc = feature_cache.prepare(cfg, target, data, spec, verbose=False)
    assert fc.built_now and all("sha256" in s for s in fc.manifest["shards"])
    return cfg, target, data, spec, fc


def test_flipped_bytes_in_a_shard_are_refused(conv_file):
    cfg, target, data, spec, fc = _built(conv_file, "cache.shard_bytes=20000")
    shard = fc.path / fc.manifest["shards"][1]["file"]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the hidden-state data: the header still parses
    shard.write_bytes(bytes(raw))
    feature_cache._VERIFIED.clear()  # as in a new process
    with pytest.raises(UserError) as err:
        feature_cache.prepare(cfg, target, data, spec, verbose=False)
    text = str(err.value)
    assert f"shard {shard.name} does not match its sha256 checksum" in text
    assert str(fc.path) in text and f"Delete the directory {fc.path}" in text
    assert "cache.enabled=false" in text
    assert shard.read_bytes() == bytes(raw)  # nothing deleted behind the user's back


def test_truncated_shard_is_refused_not_rebuilt_over(conv_file):
    cfg, target, data, spec, fc = _built(conv_file)
    shard = fc.path / fc.manifest["shards"][0]["file"]
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size - 100)
    builds = feature_cache.BUILDS["count"]
    with pytest.raises(UserError) as err:
        feature_cache.prepare(cfg, target, data, spec, verbose=False)
    text = str(err.value)
    assert f"shard {shard.name} is {size - 100} bytes, the manifest says {size} (truncated)" \
        in text
    assert f"Delete the directory {fc.path}" in text and "cache.enabled=false" in text
    assert feature_cache.BUILDS["count"] == builds and shard.stat().st_size == size - 100
    # Deleting the directory, as the message says, rebuilds it.
    import shutil

    shutil.rmtree(fc.path)
    again = feature_cache.prepare(cfg, target, data, spec, verbose=False)
    assert again.built_now and again.path == fc.path


def test_disk_full_mid_build_cleans_up_and_says_how_much(conv_file, monkeypatch,
                                                          _own_cache_root):
    cfg, target, data, spec = _setup(conv_file, "cache.shard_bytes=20000")
    real_save, calls = feature_cache._save_shard, []

    def full_disk(path, tensors, metadata):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(feature_cache, "_save_shard", full_disk)
    with pytest.raises(UserError) as err:
        feature_cache.prepare(cfg, target, data, spec, verbose=False)
    text = str(err.value)
    assert "failed (No space left on device); it needs about 4.7 MB and" in text
    assert " free now" in text and "0.0 GB" not in text
    assert "cache.dir" in text and "cache.enabled=false" in text
    assert not list(_own_cache_root.glob(".tmp-*"))  # the staging directory is gone
    assert [p.name for p in _own_cache_root.iterdir() if not p.name.startswith(".lock-")] == []


def test_human_sizes_never_read_zero():
    assert feature_cache.human_size(4589 * 768) == "3.52 MB"
    assert feature_cache.human_size(1000) == "0.001 MB"
    assert feature_cache.human_size(512) == "512 bytes"
    assert feature_cache.human_size(52_500_000_000) == "52.50 GB"


def test_old_manifest_without_checksums_is_not_reused(conv_file, _own_cache_root, capsys):
    cfg, target, data, spec, fc = _built(conv_file)
    manifest = json.loads((fc.path / "manifest.json").read_text())
    manifest["format"] = 1
    for s in manifest["shards"]:
        del s["sha256"]
    old = _own_cache_root / "old-format-cache"
    fc.path.rename(old)
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert feature_cache.find_cache(_own_cache_root, fc.manifest["base_key"], spec) is None
    again = feature_cache.prepare(cfg, target, data, spec, verbose=True)
    assert again.built_now and again.path == fc.path
    out = capsys.readouterr().out
    assert f"1 feature cache(s) in {_own_cache_root} were written by an older specbench" in out
    assert "delete them to free" in out and old.is_dir()


BUILDER = r"""
import json, os, sys, time
from pathlib import Path
from specbench import feature_cache
from specbench.algorithms import get_algorithm
from specbench.config import compose
from specbench.data import build_dataset
from specbench.target import load_target
from tests.conftest import tiny_overrides

me, conv, barrier = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cfg = compose(tiny_overrides(conv) + ["cache.shard_bytes=1"])
target = load_target(cfg.model, seed=cfg.trainer.seed)
data = build_dataset(cfg.data, target.tokenizer, cfg.trainer.max_length, verbose=False)
spec = get_algorithm(cfg.algorithm.name).feature_spec(cfg.algorithm, target.config)
real = feature_cache._save_shard
def slow(*a):
    time.sleep(0.03)  # a build long enough that the other process meets the lock
    return real(*a)
feature_cache._save_shard = slow
(barrier / me).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.01)
fc = feature_cache.prepare(cfg, target, data, spec, verbose=True)
print("RESULT " + json.dumps({"built": fc.built_now, "path": str(fc.path)}))
"""


def test_two_processes_building_one_key_make_one_good_cache(conv_file, tmp_path,
                                                             _own_cache_root):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(i), str(conv_file),
                               str(barrier)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, errs) in zip(procs, outs):
        assert p.returncode == 0, errs[-2000:]
    results = [json.loads(line[7:]) for out, _ in outs for line in out.splitlines()
               if line.startswith("RESULT ")]
    assert sorted(r["built"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    assert any("waiting for another process building feature cache" in out for out, _ in outs)
    path = Path(results[0]["path"])
    assert [p for p in _own_cache_root.iterdir() if p.is_dir()] == [path]  # no staging left
    feature_cache._VERIFIED.clear()
    cfg, target, data, spec = _setup(conv_file, "cache.shard_bytes=1")
    fc = feature_cache.prepare(cfg, target, data, spec, verbose=False)  # verifies every shard
    assert not fc.built_now and fc.path == path


def test_cli_help_and_bad_overrides(capsys):
    with pytest.raises(SystemExit) as done:
        feature_cache.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "python -m specbench.feature_cache" in out and "--count-tokens" in out
    with pytest.raises(SystemExit) as done:
        feature_cache.main(["--no-such-flag"])
    assert done.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    assert feature_cache.main(["model=no-such-model"]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_help_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "specbench.feature_cache", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--count-tokens" in proc.stdout, proc.stderr[-2000:]


def test_a_full_disk_while_writing_a_shard_is_an_os_error(tmp_path, monkeypatch):
    """A shard is written with Python's own file I/O (deterministic bytes), so a full disk is
    an OSError (ENOSPC) that the cache build turns into its message."""
    import io

    import torch

    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(feature_cache, "open", lambda *a, **k: Full(), raising=False)
    with pytest.raises(OSError) as err:
        feature_cache._save_shard(tmp_path / "s.safetensors", {"a": torch.zeros(2)}, {})
    assert err.value.errno == errno.ENOSPC


def test_training_from_a_flipped_cache_stops_before_training(conv_file, tmp_path,
                                                             _own_cache_root):
    """The issue's case: flipped bytes in a shard used to give NaN losses and a "completed" run."""
    from specbench.trainer import train

    over = tiny_overrides(conv_file, **{"trainer.max_steps": 1}) + ["cache.enabled=true"]
    first = train(compose(over), tmp_path / "first")
    shard = sorted((_own_cache_root / first["feature_cache"]["key"]).glob("train-*"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    shard.write_bytes(bytes(raw))
    feature_cache._VERIFIED.clear()  # as in a new process
    with pytest.raises(UserError, match=rf"shard {shard.name} does not match its sha256"):
        train(compose(over), tmp_path / "second")
    assert not (tmp_path / "second" / "draft.safetensors").exists()


def test_cli_refuses_unknown_keys(capsys):
    assert feature_cache.main(["+trainer.typo=1"]) == 2
    assert "trainer.typo is not a setting" in capsys.readouterr().err
