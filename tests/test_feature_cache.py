"""The target-feature cache (offline mode): same curves as online training, shared across
algorithms, reused, atomic, size-checked, keyed on everything the features depend on."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from specbench import fairness, feature_cache
from specbench.algorithms import get_algorithm
from specbench.config import compose
from specbench.data import build_dataset, collate
from specbench.errors import UserError
from specbench.target import load_target
from specbench.trainer import train

from .conftest import tiny_overrides, write_conversations


@pytest.fixture(autouse=True)
def _own_cache_root(tmp_path, monkeypatch):
    """cache.dir unset -> $SPECBENCH_CACHE/features: keep every cache inside the test dir."""
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "specbench-cache"))
    return tmp_path / "specbench-cache" / "features"


def metric_rows(run_dir, key):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in rows if key in r]


def _setup(conv_file, *extra, max_length=96):
    cfg = compose(tiny_overrides(conv_file, **{"trainer.max_length": max_length}) + list(extra))
    target = load_target(cfg.model, seed=cfg.trainer.seed)
    data = build_dataset(cfg.data, target.tokenizer, cfg.trainer.max_length)
    spec = get_algorithm(cfg.algorithm.name).feature_spec(cfg.algorithm, target.config)
    return cfg, target, data, spec


def test_cached_training_matches_online_shared_and_reused(tmp_path, conv_file, _own_cache_root,
                                                          monkeypatch):
    from specbench.target import Target

    builds = feature_cache.BUILDS["count"]
    summaries, forwards, real_features = {}, [0], Target.features

    def counting(self, *args, **kwargs):
        forwards[0] += 1
        return real_features(self, *args, **kwargs)

    monkeypatch.setattr(Target, "features", counting)
    calls = {}
    for algo, extra in [("medusa", []), ("eagle3", ["algorithm.draft_vocab_size=64"])]:
        over = tiny_overrides(conv_file, **{"trainer.max_steps": 6, "trainer.eval_every": 3}) \
            + [f"algorithm={algo}", *extra]
        online = train(compose(over), tmp_path / f"{algo}-online")
        forwards[0] = 0
        cached = train(compose(over + ["cache.enabled=true"]), tmp_path / f"{algo}-cached")
        calls[algo] = forwards[0]
        assert cached["fingerprint"] == online["fingerprint"]  # not a controlled variable
        for key in ("train/loss", "eval/loss"):
            a = metric_rows(tmp_path / f"{algo}-online", key)
            b = metric_rows(tmp_path / f"{algo}-cached", key)
            assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 2, key
            for (_, x), (_, y) in zip(a, b):
                assert abs(x - y) <= 1e-5, (algo, key, x, y)
        assert online["feature_cache"] == {"enabled": False, "used": False}
        summaries[algo] = cached["feature_cache"]
    med, eag = summaries["medusa"], summaries["eagle3"]
    # Medusa built the union cache (its final hidden + EAGLE-3's default aux layers); EAGLE-3
    # found it complete and reused it: one target pass for both algorithms.
    assert med["built_now"] and not eag["built_now"]
    assert med["key"] == eag["key"] and med["path"] == eag["path"]
    assert feature_cache.BUILDS["count"] == builds + 1
    # The target ran only to build the cache: 40 train + 8 eval rows in batches of 4.
    assert calls == {"medusa": 10 + 2, "eagle3": 0}
    assert med["layers"] == [0, 1, 2, "final"] and med["dtype"] == "float32"
    assert med["feature_bytes_per_token"] == 4 * 64 * 4  # layers 0, 1, 2 and the final state
    assert med["bytes"] > 0 and med["bytes_per_token"] >= 4 * 64 * 4
    assert med["build_time_s"] > 0 and eag["build_time_this_run_s"] == 0.0
    on_disk = json.loads((tmp_path / "medusa-cached" / "summary.json").read_text())
    assert on_disk["feature_cache"]["key"] == med["key"]
    # A second run of the same settings: no rebuild, the cache files are untouched.
    manifest = _own_cache_root / med["key"] / "manifest.json"
    mtime = manifest.stat().st_mtime_ns
    again = train(compose(tiny_overrides(conv_file, **{"trainer.max_steps": 2})
                          + ["cache.enabled=true"]), tmp_path / "again")
    assert not again["feature_cache"]["built_now"]
    assert again["feature_cache"]["key"] == med["key"]
    assert manifest.stat().st_mtime_ns == mtime and feature_cache.BUILDS["count"] == builds + 1
    # Only hidden-sized rows are stored: nothing vocabulary-sized.
    for shard in manifest.parent.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            assert set(f.keys()) == {"hidden", "offsets", "row_ids"}
            assert f.get_slice("hidden").get_shape()[1:] == [4, 64]


def test_cache_features_equal_target_features(conv_file):
    cfg, target, data, _ = _setup(conv_file, "algorithm=eagle3", "cache.layers=needed")
    spec = get_algorithm("eagle3").feature_spec(cfg.algorithm, target.config)
    fc = feature_cache.prepare(cfg, target, data, spec, verbose=False)
    rows = [5, 0, 17, 3]
    batch = collate([data.train[i] for i in rows], target.tokenizer.pad_token_id)
    online = target.features(batch["input_ids"], batch["attention_mask"], spec)
    cached = fc.features("train", rows, batch["input_ids"].shape[1], spec)
    real = batch["attention_mask"].bool()
    assert cached.final_hidden.dtype == torch.float32
    torch.testing.assert_close(cached.final_hidden[real], online.final_hidden[real],
                               rtol=1e-5, atol=1e-5)
    assert set(cached.layers) == set(online.layers)
    for i in online.layers:
        torch.testing.assert_close(cached.layers[i][real], online.layers[i][real],
                                   rtol=1e-5, atol=1e-5)
        assert (cached.layers[i][~real] == 0).all()
    medusa_spec = get_algorithm("medusa").feature_spec(cfg.algorithm, target.config)
    only_final = fc.features("eval", [0, 1], 200, medusa_spec)
    assert only_final.layers == {} and only_final.final_hidden.shape == (2, 200, 64)


def test_bf16_target_is_stored_in_bf16(conv_file):
    cfg, target, data, spec = _setup(conv_file, "model.dtype=bfloat16")
    fc = feature_cache.prepare(cfg, target, data, spec, verbose=False)
    assert fc.manifest["dtype"] == "bfloat16" and fc.info()["feature_bytes_per_token"] == 4 * 64 * 2
    feats = fc.features("train", [0], len(data.train[0].input_ids), spec)
    assert feats.final_hidden.dtype == torch.bfloat16


def test_interrupted_build_never_looks_complete(conv_file, monkeypatch, _own_cache_root):
    cfg, target, data, spec = _setup(conv_file, "cache.shard_bytes=1")  # one shard per row
    real_save, calls = feature_cache._save_shard, []

    def failing_save(path, tensors, metadata):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption mid-write")
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(feature_cache, "_save_shard", failing_save)
    with pytest.raises(KeyboardInterrupt):
        feature_cache.prepare(cfg, target, data, spec, verbose=False)
    assert len(calls) == 3
    parts = feature_cache.key_parts(cfg, target, data)
    base = feature_cache.key_digest(parts)[:16]
    assert feature_cache.find_cache(_own_cache_root, base, spec) is None
    assert not list(_own_cache_root.glob("*/manifest.json"))
    assert not list(_own_cache_root.glob(".tmp-*"))  # the failed build cleaned up after itself
    # A build killed outright leaves its staging directory; it is ignored, then removed.
    key = feature_cache.cache_key(parts, feature_cache.stored_layers(cfg.cache, spec,
                                                                    target.config))
    leftover = _own_cache_root / f".tmp-{key}-killed"
    leftover.mkdir()
    (leftover / "train-00000.safetensors").write_bytes(b"partial")
    # So is a directory with shards but no manifest.
    (_own_cache_root / "no-manifest").mkdir()
    (_own_cache_root / "no-manifest" / "train-00000.safetensors").write_bytes(b"x")
    assert feature_cache.find_cache(_own_cache_root, base, spec) is None
    monkeypatch.setattr(feature_cache, "_save_shard", real_save)
    fc = feature_cache.prepare(cfg, target, data, spec, verbose=False)
    assert fc.built_now and fc.path == _own_cache_root / key
    assert not leftover.exists() and (fc.path / "manifest.json").is_file()
    assert len(fc.manifest["shards"]) == len(data.train) + len(data.eval)
    # A shard lost afterwards makes the cache incomplete again.
    (fc.path / fc.manifest["shards"][0]["file"]).unlink()
    assert feature_cache.find_cache(_own_cache_root, base, spec) is None


def test_max_bytes_too_small_is_a_clear_error(conv_file, _own_cache_root):
    cfg, target, data, spec = _setup(conv_file, "cache.max_bytes=1000")
    with pytest.raises(UserError) as err:
        feature_cache.prepare(cfg, target, data, spec, verbose=False)
    text = str(err.value)
    assert "cache.max_bytes=1000" in text and "cache.dir" in text
    assert "cache.enabled=false" in text
    # sizes in units that never read "0.00 GB" for a small cache
    assert "about 4.7 MB" in text and "cache.max_bytes=1000 (0.001 MB)" in text
    assert not _own_cache_root.exists() or not any(_own_cache_root.iterdir())


def test_too_little_disk_is_a_clear_error(conv_file, monkeypatch):
    import shutil
    from collections import namedtuple

    cfg, target, data, spec = _setup(conv_file)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(UserError, match=r"about 4.7 MB .*more than the 0.001 MB free "
                                        r"there.*cache.dir.*cache.enabled=false"):
        feature_cache.prepare(cfg, target, data, spec, verbose=False)


def test_key_covers_max_length_data_model_and_layers(tmp_path, conv_file):
    cfg, target, data, spec = _setup(conv_file)
    layers = feature_cache.stored_layers(cfg.cache, spec, target.config)
    key = feature_cache.cache_key(feature_cache.key_parts(cfg, target, data), layers)
    assert key == feature_cache.cache_key(feature_cache.key_parts(cfg, target, data), layers)
    short_cfg, _, short_data, _ = _setup(conv_file, max_length=64)
    assert feature_cache.cache_key(feature_cache.key_parts(short_cfg, target, short_data),
                                   layers) != key
    other = write_conversations(tmp_path / "other.jsonl", seed=1)
    other_cfg, _, other_data, _ = _setup(other)
    assert feature_cache.cache_key(feature_cache.key_parts(other_cfg, target, other_data),
                                   layers) != key
    qwen_cfg, qwen, qwen_data, _ = _setup(conv_file, "model=tiny-qwen2")
    assert feature_cache.cache_key(feature_cache.key_parts(qwen_cfg, qwen, qwen_data),
                                   layers) != key
    seed_cfg = compose(tiny_overrides(conv_file, **{"trainer.seed": 1}))
    reseeded = load_target(seed_cfg.model, seed=1)  # random weights depend on the seed
    assert feature_cache.key_parts(seed_cfg, reseeded, data)["model"] != \
        feature_cache.key_parts(cfg, target, data)["model"]
    assert feature_cache.cache_key(feature_cache.key_parts(cfg, target, data), [1, "final"]) \
        != key


def test_layer_sets_union_and_needed(conv_file):
    cfg = compose(tiny_overrides(conv_file))
    from specbench.target import config_from_arch

    tc = config_from_arch(cfg.model.arch)  # 4 layers: EAGLE-3 default aux [0, 1, 2]
    medusa = get_algorithm("medusa").feature_spec(cfg.algorithm, tc)
    assert feature_cache.stored_layers(cfg.cache, medusa, tc) == [0, 1, 2, "final"]
    needed = compose(tiny_overrides(conv_file) + ["cache.layers=needed"]).cache
    assert feature_cache.stored_layers(needed, medusa, tc) == ["final"]
    e3 = compose(tiny_overrides(conv_file) + ["algorithm=eagle3", "algorithm.aux_layers=[0,1,2]"])
    spec = get_algorithm("eagle3").feature_spec(e3.algorithm, tc)
    assert feature_cache.stored_layers(e3.cache, spec, tc) == [0, 1, 2, "final"]


def test_the_union_serves_dflash_and_eagle3_from_one_cache():
    """DFlash fuses other target layers than EAGLE-3 (SmolLM2: 1, 8, 14, 20, 27 against 1, 14,
    26): cache.layers=union stores both, so whichever algorithm builds the cache, the other
    finds every layer it needs in it; cache.layers=needed stores one algorithm's only."""
    from specbench.target import config_from_arch

    cfg = compose(["algorithm=dflash"])
    tc = config_from_arch(cfg.model.arch)
    union = [1, 8, 14, 20, 26, 27, "final"]
    specs = {}
    for name in ("dflash", "eagle3", "medusa", "hydra"):
        c = compose([f"algorithm={name}"])
        specs[name] = get_algorithm(name).feature_spec(c.algorithm, tc)
        assert feature_cache.stored_layers(c.cache, specs[name], tc) == union, name
    assert specs["dflash"].layers == (1, 8, 14, 20, 27)
    assert set(specs["eagle3"].layers) <= set(union) and set(specs["dflash"].layers) <= set(union)
    needed = compose(["algorithm=dflash", "cache.layers=needed"]).cache
    assert feature_cache.stored_layers(needed, specs["dflash"], tc) == [1, 8, 14, 20, 27, "final"]


def test_cache_settings_do_not_change_the_fingerprint():
    sha = "0" * 64
    base = fairness.fingerprint(compose(), sha)
    assert base == fairness.fingerprint(compose(["cache.enabled=true", "cache.dir=/x",
                                                 "cache.max_bytes=5", "cache.layers=needed"]),
                                        sha)
    assert "cache" not in fairness.controlled_variables(compose())


def test_cli_prints_bytes_per_token(capsys):
    assert feature_cache.main([]) == 0  # the embedded SmolLM2, analytically: no model load
    out = capsys.readouterr().out
    # the union: EAGLE-3's aux layers 1, 14, 26 and DFlash's 1, 8, 14, 20, 27 on SmolLM2
    assert "[1, 8, 14, 20, 26, 27, 'final'] -> 8064 bytes/token" in out
    assert "medusa alone: ['final'] -> 1152 bytes/token" in out
