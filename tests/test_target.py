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
