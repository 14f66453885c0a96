"""Fairness: algorithm files touch only algorithm.*, and the fingerprint sees exactly the
controlled variables."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from specbench import fairness
from specbench.config import compose, conf_dir
from specbench.errors import UserError

SHA = "0" * 64


def fp(*overrides, sha=SHA):
    return fairness.fingerprint(compose(list(overrides)), sha)


def test_algorithm_files_only_set_algorithm():
    files = sorted((conf_dir() / "algorithm").glob("*.yaml"))
    assert files
    base = OmegaConf.to_container(compose(), resolve=True)
    for path in files:
        fairness.check_algorithm_file(path)
        composed = OmegaConf.to_container(compose([f"algorithm={path.stem}"]), resolve=True)
        for section in ("model", "data", "trainer", "tracker", "decode"):
            assert composed[section] == base[section], (path, section)


def test_algorithm_file_touching_trainer_is_rejected(tmp_path):
    bad = tmp_path / "sneaky.yaml"
    bad.write_text("# @package _global_\nalgorithm:\n  name: medusa\ntrainer:\n  lr: 1.0\n")
    with pytest.raises(UserError, match="may only set algorithm"):
        fairness.check_algorithm_file(bad)
    bad.write_text("defaults:\n  - /schema/algorithm@_here_: medusa\n  - override /trainer: "
                   "specforge\n  - _self_\nname: medusa\n")
    with pytest.raises(UserError, match="may not select or override other config groups"):
        fairness.check_algorithm_file(bad)


def test_algorithm_settings_do_not_change_fingerprint():
    a = fp("algorithm.num_heads=2")
    assert a == fp("algorithm.num_heads=5") == fp("algorithm.lm_head=shared", "algorithm.loss_decay=1.0")
    assert len(a) == 12


@pytest.mark.parametrize("override", [
    "trainer.lr=0.002", "trainer.seed=1", "trainer.micro_batch_size=2", "trainer.epochs=2",
    "trainer.max_length=256", "trainer=specforge", "data.eval_rows=8", "data.max_rows=100",
    "model=tiny-llama", "model.dtype=float32", "decode.max_new_tokens=64", "decode.num_prompts=9",
])
def test_controlled_changes_change_fingerprint(override):
    assert fp(override) != fp()


def test_dataset_content_changes_fingerprint():
    assert fp(sha="1" * 64) != fp()


def test_bookkeeping_does_not_change_fingerprint():
    assert fp("trainer.resume=true", "trainer.log_every=1", "trainer.checkpoint_every=7",
              "trainer.eval_every=3", "tracker.mode=disabled", "decode.enabled=false") == fp()


def test_parameter_tables_split_controlled_and_algorithm():
    text = fairness.parameter_tables(compose(["algorithm.num_heads=3"]), "abc123")
    controlled, algorithm = text.split("Algorithm-specific")
    assert "fingerprint abc123" in controlled and "trainer.lr" in controlled
    assert "algorithm." not in controlled
    assert "algorithm.num_heads" in algorithm and "│ 3" in algorithm


def test_global_batch_and_expected_steps():
    t = compose(["trainer.micro_batch_size=4", "trainer.global_batch_size=16"]).trainer
    assert fairness.resolve_grad_accum(t, world=2) == 2
    assert fairness.global_batch(4, 2, 2) == 16
    with pytest.raises(UserError, match="not divisible"):
        fairness.resolve_grad_accum(t, world=3)
    assert fairness.expected_steps(rows=33, global_bs=8, epochs=2, max_steps=None) == 10
    assert fairness.expected_steps(rows=33, global_bs=8, epochs=2, max_steps=7) == 7


def test_algorithm_files_bind_the_schema_and_set_only_what_differs_from_it():
    """The schema's defaults are the one source of truth: a shipped algorithm file binds its
    schema and repeats no default (the composed section equals the dataclass defaults plus the
    file's own differing keys)."""
    import dataclasses

    import yaml

    for path in sorted((conf_dir() / "algorithm").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert {"/schema/algorithm@_here_": path.stem} in data["defaults"], path
        algo = compose([f"algorithm={path.stem}"]).algorithm
        schema = OmegaConf.get_type(algo)
        defaults = OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)
        assert dataclasses.is_dataclass(schema)
        for key, value in data.items():
            if key != "defaults":
                assert value != defaults[key], f"{path}: {key}={value} is the schema's default"
