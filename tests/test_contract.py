"""The algorithm contract, checked for every entry of ``REGISTRY`` on tiny Llama and Qwen2
targets: a new algorithm gets all of these checks by adding its registry line.

Two optimizer steps of each algorithm (its default settings) must change every trainable
parameter; a run stopped after step 1 and resumed must end bit-identical to an uninterrupted
one; training on cached target features must give the online losses; every declared proposer
must decode exactly like greedy; every declared export must hold the trained tensors unchanged
(fp32) and rebuild the draft; ``conf/algorithm/<name>.yaml`` must exist and bind its schema.
"""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from specbench.algorithms import REGISTRY
from specbench.algorithms.base import PROPOSER_KINDS, DraftAlgorithm
from specbench.config import compose, conf_dir
from specbench.decoding import Autoregressive, speculative_generate
from specbench.export import FORMATS, export_run
from specbench.target import load_target
from specbench.trainer import train

from .conftest import tiny_overrides, write_conversations

MODELS = ("tiny-llama", "tiny-qwen2")
CASES = [(name, model) for name in sorted(REGISTRY) for model in MODELS]
REQUIRED = ("feature_spec", "build", "loss", "from_state", "make_proposer")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(algorithm, model) -> its trained 2-step run, trained once for every test here."""
    made: dict = {}

    def get(name: str, model: str) -> dict:
        if (name, model) not in made:
            made[name, model] = _train(tmp_path_factory.mktemp(f"{name}-{model}"), name, model)
        return made[name, model]

    return get


def _train(root, name: str, model: str) -> dict:
    convs = write_conversations(root / "convs.jsonl")
    over = tiny_overrides(convs, model=model, algorithm=name, **{"trainer.max_steps": 2})
    cls = REGISTRY[name]
    built = {}
    real_build = cls.build.__func__

    def recording_build(klass, cfg, target, data=None):  # the draft's initial tensors
        draft = real_build(klass, cfg, target, data)
        built["init"] = {k: v.detach().clone() for k, v in draft.trainable_state_dict().items()}
        built["trainable"] = sorted(n for n, p in draft.named_parameters() if p.requires_grad)
        return draft

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "build", classmethod(recording_build))
        mp.setenv("SPECBENCH_CACHE", str(root / "cache"))
        train(compose(over), root / "run")
    return {"over": over, "root": root, "run": root / "run", **built}


def _losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_class_declares_the_contract(name):
    cls = REGISTRY[name]
    assert issubclass(cls, DraftAlgorithm) and cls.name == name
    for method in REQUIRED:  # no algorithm leans on the base's NotImplementedError
        assert getattr(cls, method) is not getattr(DraftAlgorithm, method), method
    assert cls.proposers and set(cls.proposers) <= set(PROPOSER_KINDS), cls.proposers
    assert set(cls.export_formats) <= set(FORMATS), cls.export_formats
    assert set(cls.export_notes) <= set(FORMATS) - set(cls.export_formats)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_its_config_file_exists_and_binds_its_schema(name):
    path = conf_dir() / "algorithm" / f"{name}.yaml"
    assert path.is_file(), f"{path} is missing"
    cfg = compose([f"algorithm={name}"])
    assert OmegaConf.get_type(cfg.algorithm) is REGISTRY[name].config_class
    assert cfg.algorithm.name == name


@pytest.mark.parametrize("name,model", CASES)
def test_two_steps_change_every_trainable_parameter(runs, name, model):
    r = runs(name, model)
    trained = load_file(str(r["run"] / "draft.safetensors"))
    assert r["trainable"] and set(trained) == set(r["init"])
    unchanged = [n for n in r["trainable"] if torch.equal(trained[n], r["init"][n])]
    assert not unchanged, f"{name} on {model}: not trained: {unchanged}"


@pytest.mark.parametrize("name,model", CASES)
def test_resume_equals_an_uninterrupted_run(runs, name, model, monkeypatch):
    r = runs(name, model)
    monkeypatch.setenv("SPECBENCH_CACHE", str(r["root"] / "cache"))
    part = r["root"] / "part"
    train(compose(r["over"]), part, stop_after_steps=1)
    assert not (part / "draft.safetensors").exists()
    train(compose(r["over"] + ["trainer.resume=true"]), part)
    a, b = load_file(str(r["run"] / "draft.safetensors")), load_file(str(part / "draft.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(part) == _losses(r["run"])


@pytest.mark.parametrize("name,model", CASES)
def test_cached_features_train_like_online_ones(runs, name, model, monkeypatch):
    r = runs(name, model)
    monkeypatch.setenv("SPECBENCH_CACHE", str(r["root"] / "cache"))
    cached = r["root"] / "cached"
    summary = train(compose(r["over"] + ["cache.enabled=true"]), cached)
    assert summary["feature_cache"]["used"]
    online, offline = _losses(r["run"]), _losses(cached)
    assert [s for s, _ in online] == [s for s, _ in offline] and online
    for (_, x), (_, y) in zip(online, offline):
        assert abs(x - y) <= 1e-5, (x, y)


@pytest.mark.parametrize("name,model", CASES)
def test_every_declared_proposer_decodes_like_greedy(runs, name, model):
    r = runs(name, model)
    cfg = compose(r["over"])
    target = load_target(cfg.model)
    cls = REGISTRY[name]
    draft = cls.from_state(cfg.algorithm, target, load_file(str(r["run"] / "draft.safetensors")))
    draft = draft.to(dtype=target.model.dtype).eval()
    prompt = list(range(40, 64))
    greedy = speculative_generate(target, Autoregressive(), prompt, 24, set())
    for kind in cls.proposers:
        res = speculative_generate(target, draft.make_proposer(kind), prompt, 24, set())
        assert res.tokens == greedy.tokens, f"{name} {kind} on {model}"


@pytest.mark.parametrize("name,model", CASES)
def test_every_declared_export_round_trips(runs, name, model):
    r = runs(name, model)
    cls = REGISTRY[name]
    cfg = compose(r["over"])
    target = load_target(cfg.model)
    state = load_file(str(r["run"] / "draft.safetensors"))
    for fmt in cls.export_formats:
        dest = export_run(r["run"], fmt, out=r["root"] / f"export-{fmt}", dtype="float32")
        json.loads((dest / "config.json").read_text())
        tensors = load_file(str(dest / "model.safetensors"))
        # an export may leave out what the engine derives (EAGLE-3's d2t/t2d at an equal
        # vocabulary), but the draft rebuilt from it must hold every trained tensor unchanged
        shared = set(state) & set(tensors)
        assert all(torch.equal(tensors[k], state[k]) for k in shared), fmt
        back = cls.from_state(cfg.algorithm, target, {k: tensors[k] for k in shared})
        rebuilt = back.trainable_state_dict()
        assert set(rebuilt) == set(state), (fmt, sorted(set(state) ^ set(rebuilt)))
        assert all(torch.equal(rebuilt[k], state[k]) for k in state), fmt
