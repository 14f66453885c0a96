"""``specbench.config.validate``: values that would train wrong, or make torch raise, and keys no
schema declares are refused before anything loads, as one UserError naming the setting."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from specbench.config import compose, conf_dir, validate
from specbench.errors import UserError

TINY = ["model=tiny-llama"]


@pytest.mark.parametrize("overrides, message", [
    # values that silently trained wrong
    (["trainer.max_grad_norm=0"], "trainer.max_grad_norm=0.0 must be > 0"),
    (["trainer.max_grad_norm=-1"], "trainer.max_grad_norm=-1.0 must be > 0"),
    (["algorithm.loss_decay=0"], "algorithm.loss_decay=0.0 must be > 0"),
    (["algorithm=eagle3", "algorithm.step_decay=-0.5"], "algorithm.step_decay=-0.5 must be > 0"),
    (["data.eval_rows=-1"], "data.eval_rows=-1 must be at least 0"),
    (["algorithm=eagle3", "algorithm.draft_vocab_size=0"],
     "algorithm.draft_vocab_size=0 must be at least 1"),
    (["trainer.keep_checkpoints=0"], "trainer.keep_checkpoints=0 must be at least 1"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every=-1 must be at least 0"),
    (["trainer.warmup_ratio=1.5"], "trainer.warmup_ratio=1.5 must be in [0, 1]"),
    (["trainer.warmup_ratio=-0.1"], "trainer.warmup_ratio=-0.1 must be in [0, 1]"),
    # values torch rejected with a traceback
    (["trainer.lr=-1e-3"], "trainer.lr=-0.001 must be > 0"),
    (["trainer.weight_decay=-0.1"], "trainer.weight_decay=-0.1 must be >= 0"),
    (["trainer.adam_beta1=1.0"], "trainer.adam_beta1=1.0 must be in [0, 1)"),
    (["trainer.adam_beta2=-0.1"], "trainer.adam_beta2=-0.1 must be in [0, 1)"),
    (["trainer.global_batch_size=0"], "trainer.global_batch_size=0 must be at least 1"),
    (["trainer.global_batch_size=6", "trainer.micro_batch_size=4"],
     "trainer.global_batch_size=6 is not divisible by trainer.micro_batch_size=4"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 must be at least 1"),
    (["trainer.max_steps=-3"], "trainer.max_steps=-3 must be at least 1"),
    (TINY + ["algorithm=eagle3", "algorithm.num_attention_heads=3"],
     "algorithm.num_attention_heads=3 must divide model.arch.hidden_size=64"),
    (TINY + ["algorithm=eagle3", "algorithm.num_key_value_heads=3"],
     "algorithm.num_key_value_heads=3 must divide the draft's attention heads, 4"),
    (TINY + ["algorithm=eagle3", "algorithm.draft_vocab_size=1000"],
     "algorithm.draft_vocab_size=1000 must be at most the target's vocabulary, "
     "model.arch.vocab_size=320"),
    (TINY + ["algorithm=eagle3", "algorithm.aux_layers=[0,1,4]"],
     "must name layers of the target, 0..2"),
    (TINY + ["algorithm=eagle3", "algorithm.aux_layers=[0,1,3]"],  # the last layer: post-norm
     "must name layers of the target, 0..2"),
    (["algorithm=eagle3", "algorithm.aux_layers=[1,2]"], "must name 3 decoder layers"),
    (["algorithm=eagle3", "algorithm.ttt_length=0"], "algorithm.ttt_length=0 must be at least 1"),
    (["algorithm.num_heads=0"], "algorithm.num_heads=0 must be at least 1"),
    # data.max_rows gets its own message (it was blamed on data.eval_rows)
    (["data.max_rows=0"], "data.max_rows=0 must be at least 1"),
    (["data.max_rows=10"], "data.eval_rows=16 holds out all of the data.max_rows=10 rows"),
    # moved from trainer.py into the schema
    (["trainer.micro_batch_size=0"], "trainer.micro_batch_size=0 must be at least 1"),
    (["trainer.grad_accum=0"], "trainer.grad_accum=0 must be at least 1"),
    (["trainer.epochs=0"], "trainer.epochs=0 must be at least 1"),
    (["trainer.max_length=0"], "trainer.max_length=0 must be at least 1"),
    (["trainer.log_every=0"], "trainer.log_every=0 must be at least 1"),
    (["trainer.eval_every=0"], "trainer.eval_every=0 must be at least 1"),
    # evaluation settings, refused before training rather than after it
    (["decode.num_prompts=0"], "decode.num_prompts=0 must be at least 1"),
    (["decode.max_new_tokens=0"], "decode.max_new_tokens=0 must be at least 1"),
    (["decode.prompt_lookup_ngram=0"], "decode.prompt_lookup_ngram=0 must be at least 1"),
    (["decode.lookahead.level=2"], "decode.lookahead.level=2 must be at least 3"),
    (["cache.shard_bytes=0"], "cache.shard_bytes=0 must be at least 1"),
    (TINY + ["model.arch.vocab_size=0"], "model.arch.vocab_size=0 must be at least 1"),
])
def test_bad_values_are_one_user_error_naming_the_setting(overrides, message):
    cfg = compose(overrides)
    with pytest.raises(UserError) as err:
        validate(cfg)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key, section, schema", [
    ("trainer.typo", "trainer", "TrainerConfig"),
    ("model.x", "model", "ModelConfig"),
    ("model.arch.x", "model.arch", "ArchConfig"),
    ("algorithm.x", "algorithm", "MedusaConfig"),
    ("data.x", "data", "DataConfig"),
    ("decode.lookahead.x", "decode.lookahead", "LookaheadConfig"),
    ("tracker.x", "tracker", "TrackerConfig"),
    ("cache.x", "cache", "CacheConfig"),
    ("typo", "the top level", "Config"),
])
def test_added_unknown_keys_are_refused(key, section, schema):
    """Hydra's ``+key=value`` adds keys even to structured configs (force_add)."""
    cfg = compose([f"+{key}=1"])
    with pytest.raises(UserError) as err:
        validate(cfg)
    text = str(err.value)
    assert f"{key} is not a setting of {section} (schema {schema})" in text
    assert "Check the spelling" in text


def test_unknown_key_on_eagle3_names_its_settings():
    with pytest.raises(UserError) as err:
        validate(compose(["algorithm=eagle3", "+algorithm.ttt_lenght=3"]))
    assert "algorithm.ttt_lenght is not a setting of algorithm (schema Eagle3Config)" in str(
        err.value) and "ttt_length" in str(err.value)


def test_disabled_eval_settings_are_not_checked():
    validate(compose(["decode.enabled=false", "decode.num_prompts=0"]))


def test_accepted_edges():
    validate(compose(["trainer.warmup_ratio=0", "trainer.warmup_ratio=1", "data.eval_rows=0",
                      "trainer.checkpoint_every=0", "trainer.max_steps=1",
                      "trainer.adam_beta1=0", "algorithm.num_layers=0"]))
    validate(compose(TINY + ["algorithm=eagle3", "algorithm.num_attention_heads=8",
                             "algorithm.num_key_value_heads=4", "algorithm.draft_vocab_size=320",
                             "algorithm.aux_layers=[0,1,2]"]))


def _options(group):
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["algorithm", "model", "data", "trainer", "decode", "cache"])
def test_every_shipped_option_validates(group):
    for option in _options(group):
        validate(compose([f"{group}={option}"]
                         + (["data.path=x.jsonl"] if option == "jsonl" else [])))


@pytest.mark.parametrize("model", _options("model"))
def test_eagle3_on_every_shipped_model_validates(model):
    validate(compose(["algorithm=eagle3", f"model={model}"]))


@pytest.mark.parametrize("name", _options("experiment"))
def test_every_experiment_preset_validates(name):
    validate(compose([f"+experiment={name}"]))


def test_validate_leaves_the_config_as_it_was():
    cfg = compose()
    before = OmegaConf.to_yaml(cfg)
    validate(cfg)
    assert OmegaConf.to_yaml(cfg) == before


@pytest.mark.parametrize("overrides, message", [
    # issue 10: a traceback from transformers (or at the first forward) before
    (TINY + ["model.arch.num_attention_heads=3"],
     "model.arch.num_attention_heads=3 must divide model.arch.hidden_size=64"),
    (TINY + ["model.arch.num_key_value_heads=3"],
     "model.arch.num_key_value_heads=3 must divide model.arch.num_attention_heads=4"),
    # issue 10: silently ignored before
    (["trainer.global_batch_size=16", "trainer.grad_accum=2"],
     "trainer.grad_accum=2 and trainer.global_batch_size=16 are both set"),
    (TINY + ["model.path=/some/dir"], "model.path=/some/dir is read only with "
     "model.source=local (model.source is random"),
    (["data.split=test"], "data.split=test applies only to a hub dataset (data.hub_id); with "
     "data.path=embedded"),
    # issue 10: refused only after training before
    (["objective=eval_split.nope"], "objective=eval_split.nope is not a number of a run's "
     "summary.json"),
    (["objective=algorithm"], "objective=algorithm is not a number"),
    (["objective=eval_split.top1.x"], "objective=eval_split.top1.x is not a number"),
])
def test_conflicts_and_impossible_values_are_refused(overrides, message):
    with pytest.raises(UserError) as err:
        validate(compose(overrides))
    assert message in str(err.value)


def test_conflict_rules_accept_the_right_spelling():
    validate(compose(["trainer.global_batch_size=16"]))  # grad_accum left at its default, 1
    validate(compose(TINY + ["model.source=local", "model.path=/some/dir"]))
    validate(compose(["data=ultrachat"]))  # a hub dataset's own split
    for objective in ("eval_split.loss", "eval_split.top1.0", "train.flops.total",
                      "checklist.tokens_trained"):
        validate(compose([f"objective={objective}"]))


def test_every_objective_is_a_number_of_a_real_summary(tmp_path):
    """config.OBJECTIVES mirrors the summary.json that trainer.train writes."""
    import math

    from specbench.config import OBJECTIVES
    from specbench.sweep import objective_value
    from specbench.trainer import train

    from .conftest import tiny_overrides, write_conversations

    cfg = compose(tiny_overrides(write_conversations(tmp_path / "c.jsonl"),
                                 **{"trainer.max_steps": 1, "decode.enabled": "false"}))
    summary = train(cfg, tmp_path / "run")
    for section, keys in OBJECTIVES.items():
        for key in keys:
            path = f"{section}.{key.replace('.N', '.0')}"
            value = objective_value(compose([f"objective={path}"]), summary)
            assert not math.isnan(value), path


def test_an_algorithm_file_without_its_schema_binding_is_refused(tmp_path):
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from specbench.config import register_configs

    conf = shutil.copytree(conf_dir(), tmp_path / "conf")
    (conf / "algorithm" / "bare.yaml").write_text("name: medusa\nnum_heads: 4\nnum_haeds: 2\n")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=["algorithm=bare"])
    with pytest.raises(UserError, match=r"algorithm=medusa\) does not bind its schema.*"
                       r"/schema/algorithm@_here_: NAME"):
        validate(cfg)
