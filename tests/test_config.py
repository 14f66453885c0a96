"""Composing the real configs: every group loads, and mistakes fail at compose time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from specbench.config import compose, conf_dir

GROUPS = {g: sorted(p.stem for p in (conf_dir() / g).glob("*.yaml"))
          for g in ("algorithm", "model", "data", "trainer", "tracker", "debug")}


def test_groups_present():
    from specbench.algorithms import CONFIGS

    assert GROUPS["algorithm"] == sorted(CONFIGS)  # every registered algorithm has its file
    assert GROUPS["model"] == ["llama3-8b", "qwen2.5-7b", "smollm2-135m", "tiny-llama",
                               "tiny-qwen2"]
    assert GROUPS["data"] == ["embedded-chat", "embedded-large", "jsonl", "sharegpt", "ultrachat"]
    assert GROUPS["trainer"] == ["default", "quality", "specforge"]
    assert GROUPS["tracker"] == ["wandb"]
    assert GROUPS["debug"] == ["tiny"]


@pytest.mark.parametrize("group", ["algorithm", "model", "data", "trainer"])
def test_every_option_composes(group):
    for option in GROUPS[group]:
        cfg = compose([f"{group}={option}"] + (["data.path=x.jsonl"] if option == "jsonl" else []))
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_defaults():
    cfg = compose()
    assert cfg.algorithm.name == "medusa" and cfg.algorithm.num_heads == 4
    assert cfg.model.name == "smollm2-135m" and cfg.model.source.value == "embedded"
    assert cfg.data.path == "embedded" and cfg.tracker.mode.value == "offline"


def test_specforge_trainer_matches_seed_baseline():
    t = compose(["trainer=specforge"]).trainer
    assert (t.lr, t.micro_batch_size, t.grad_accum, t.epochs, t.warmup_ratio, t.max_grad_norm,
            t.max_length) == (5e-5, 1, 1, 1, 0.015, 0.5, 2048)


def test_real_model_facts():
    llama = compose(["model=llama3-8b"]).model
    assert llama.hub_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert (llama.arch.hidden_size, llama.arch.num_hidden_layers, llama.arch.vocab_size,
            llama.arch.rope_theta) == (4096, 32, 128256, 500000.0)
    qwen = compose(["model=qwen2.5-7b"]).model
    assert qwen.hub_id == "Qwen/Qwen2.5-7B-Instruct"
    assert (qwen.arch.hidden_size, qwen.arch.num_attention_heads, qwen.arch.num_key_value_heads,
            qwen.arch.intermediate_size, qwen.arch.rope_theta) == (3584, 28, 4, 18944, 1e6)


@pytest.mark.parametrize("override, message", [
    ("trainer.lr=abc", "could not be converted to Float"),
    ("algorithm.num_heads=x", "could not be converted to Integer"),
    ("algorithm.nope=1", "Key 'nope' not in 'MedusaConfig'"),
    ("trainer.lr_typo=1", "Key 'lr_typo' not in 'TrainerConfig'"),
    ("model.dtype=float8", "Invalid value 'float8'"),
    ("tracker.mode=sometimes", "Invalid value 'sometimes'"),
    ("algorithm=nope", "Could not find 'algorithm/nope'"),
])
def test_bad_overrides_fail_at_compose(override, message):
    with pytest.raises(ConfigCompositionException) as err:
        compose([override])
    text = str(err.value) + str(err.value.__cause__)
    assert message in text


def _cli(*args, timeout=60):
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "specbench", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).parents[1])
    return proc, time.time() - start


def test_cli_unknown_algorithm_lists_choices():
    proc, seconds = _cli("algorithm=nope")
    assert proc.returncode != 0 and seconds < 10
    assert "Could not find 'algorithm/nope'" in proc.stderr
    assert "Available options in 'algorithm'" in proc.stderr and "\tmedusa" in proc.stderr


def test_cli_bad_type():
    proc, seconds = _cli("trainer.lr=abc")
    assert proc.returncode != 0 and seconds < 10
    assert "Value 'abc' of type 'str' could not be converted to Float" in proc.stderr
    assert "trainer.lr" in proc.stderr


def test_cli_hub_model_without_network_is_one_clear_error(tmp_path):
    proc, seconds = _cli("model=qwen2.5-7b", "tracker.mode=disabled",
                         f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "Qwen/Qwen2.5-7B-Instruct" in proc.stderr
    assert "model.source=local model.path=" in proc.stderr and "model=smollm2-135m" in proc.stderr
    assert seconds < 30


def test_hydra_settings_keep_cwd_and_clock_only_in_hydra():
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hcompose("config", return_hydra_config=True)
    assert cfg.hydra.job.chdir is False
    assert cfg.hydra.run.dir.startswith("outputs/") and cfg.hydra.sweep.dir.startswith("multirun/")
    job = OmegaConf.to_yaml(compose())
    assert "now:" not in job  # nothing outside hydra.* depends on the clock


def test_multirun_gives_each_job_its_own_run_and_one_fingerprint(tmp_path):
    import json as _json

    from .conftest import tiny_overrides, write_conversations

    conv = write_conversations(tmp_path / "c.jsonl")
    args = [a for a in tiny_overrides(conv, **{"trainer.max_steps": 1})
            if not a.startswith("tracker.")]
    proc, _ = _cli("-m", *args, "algorithm.num_heads=2,3", f"hydra.sweep.dir={tmp_path}/sweep",
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted((tmp_path / "sweep").glob("*-medusa"))
    assert [r.name for r in runs] == ["0-medusa", "1-medusa"]
    summaries = [_json.loads((r / "summary.json").read_text()) for r in runs]
    assert [s["algorithm_config"]["num_heads"] for s in summaries] == [2, 3]
    assert summaries[0]["fingerprint"] == summaries[1]["fingerprint"]
    ids = {s["wandb"]["run_id"] for s in summaries}
    assert len(ids) == 2 and all(list((r / "wandb").glob("offline-run-*")) for r in runs)


@pytest.mark.parametrize("name", ["all_algorithms", "medusa_vs_eagle3", "num_heads_sweep", "lr_matched",
                                  "seed_repeat", "llama3_8b_seed_baseline",
                                  "qwen25_7b_seed_baseline", "horizon_dflash", "horizon_eagle3",
                                  "embedded_quality", "embedded_scaling",
                                  "embedded_quality_lr"])
def test_experiment_presets_compose_as_sweeps(name):
    """Every preset composes with the real configs, is a multirun into a fixed directory (so a
    re-run skips finished jobs), and sweeps only algorithm settings or the declared grid."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from specbench.config import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[f"experiment={name}"],
                            return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    horizon = name.startswith("horizon_")
    assert cfg.hydra.sweep.dir == (f"multirun/horizon_matched/{name[8:]}" if horizon
                                   else f"multirun/{name}")
    params = dict(cfg.hydra.sweeper.params)
    allowed = {"algorithm", "algorithm.num_heads", "trainer.lr", "trainer.seed",
               "algorithm.block_size", "algorithm.ttt_length", "trainer.max_steps"}
    assert params and set(params) <= allowed, params
    if name.startswith("embedded_"):  # the large corpus from the feature cache, one epoch
        assert cfg.data.name == "embedded-large" and cfg.cache.enabled
        assert cfg.trainer.epochs == 1 and cfg.trainer.max_length == 1024
        assert cfg.decode.enabled == (name == "embedded_quality")
    if name == "embedded_quality":
        assert (cfg.decode.num_prompts, cfg.decode.max_new_tokens) == (40, 128)
        assert params == {"algorithm": "glob(*)", "trainer.seed": "0,1,2"}
        assert cfg.trainer.max_steps == 400  # every job capped alike (the recorded budget)
    if name == "embedded_scaling":
        assert params["trainer.max_steps"] == "25,50,100,200,400"
    if name == "all_algorithms":  # every file of conf/algorithm/, so a new one joins in
        from specbench.algorithms import CONFIGS

        assert params == {"algorithm": "glob(*)"}
        assert {p.stem for p in (conf_dir() / "algorithm").glob("*.yaml")} == set(CONFIGS)
    if name.endswith("seed_baseline"):
        assert cfg.trainer.lr == 5e-5 and cfg.trainer.max_length == 2048
        assert cfg.model.source.value == "hub" and not cfg.cache.enabled
    else:
        assert cfg.model.source.value == "embedded" and cfg.cache.enabled


def test_experiment_is_chosen_with_or_without_plus():
    """``experiment: null`` in the defaults list: ``experiment=NAME`` as in
    lightning-hydra-template, and the older ``+experiment=NAME`` still works (compose and
    ``python -m specbench`` turn it into the former)."""
    plain = OmegaConf.to_container(compose(["experiment=seed_repeat"]))
    assert OmegaConf.to_container(compose(["+experiment=seed_repeat"])) == plain
    assert plain["cache"]["enabled"] and not compose().cache.enabled


def test_debug_tiny_is_the_tests_tiny_config(tmp_path):
    """``debug=tiny`` (for users) composes to exactly what the tests' tiny_overrides give."""
    from .conftest import tiny_overrides

    data = ["data=jsonl", f"data.path={tmp_path}/c.jsonl"]
    ours = compose(["debug=tiny"] + data)
    assert OmegaConf.to_container(ours) == OmegaConf.to_container(
        compose(tiny_overrides(f"{tmp_path}/c.jsonl")))
    assert compose(["debug=tiny", "model=tiny-qwen2"]).model.name == "tiny-qwen2"


def test_conf_is_package_data():
    """The configs ship inside the package (pkg://specbench.conf), so a non-editable install
    has them, and pyproject's package-data names every one of them."""
    from importlib.resources import files

    import tomllib

    root = files("specbench.conf")
    assert root.joinpath("config.yaml").is_file()
    assert root.joinpath("algorithm", "medusa.yaml").is_file()
    assert conf_dir() == Path(str(root))
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["specbench"]
    assert "conf/**/*.yaml" in globs and "conf/*.yaml" in globs
    assert not (Path(__file__).parents[1] / "conf").exists()  # one copy only


def test_cli_help_explains_the_tool():
    proc, seconds = _cli("--help", "model=tiny-llama")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "train a speculative-decoding draft model" in out and "examples:" in out
    assert "python -m specbench experiment=medusa_vs_eagle3" in out
    assert "Hydra" not in out.split("\n")[0]  # not Hydra's stock page
    assert "model.name=tiny-llama" in out  # values as this command would compose them
    assert "tiny-llama*" in out and "debug           tiny" in out
    # field help from the schema's metadata
    assert "trainer.grad_accum=1" in out and "micro batches per optimizer step" in out


def test_composing_a_config_imports_no_torch():
    code = ("import sys; from specbench.config import compose, validate; validate(compose()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_horizon_matched_presets_share_the_all_algorithms_settings():
    """The horizon-matched sweep ranks against the all-algorithms runs: the same controlled
    settings (so the same fingerprint), block_size 4 and 8 against ttt_length 4 and 8."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from specbench import fairness
    from specbench.config import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    out = {}
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for name in ("all_algorithms", "horizon_dflash", "horizon_eagle3"):
            cfg = hydra_compose(config_name="config", overrides=[f"experiment={name}"],
                                return_hydra_config=True)
            out[name] = (fairness.controlled_variables(cfg), dict(cfg.hydra.sweeper.params),
                         cfg.algorithm.name)
    assert out["horizon_dflash"][0] == out["horizon_eagle3"][0] == out["all_algorithms"][0]
    assert out["horizon_dflash"][1:] == ({"algorithm.block_size": "4,8"}, "dflash")
    assert out["horizon_eagle3"][1:] == ({"algorithm.ttt_length": "4,8"}, "eagle3")
