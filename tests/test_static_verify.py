"""The fixed-shape verify path (static KV cache, query padded to buckets): the CPU twin of the
CUDA-graph path (``decode.verify=graphs`` runs this same code captured). In fp32 it must give
what the dynamic path gives: the same tokens as plain greedy for every proposer (chains, trees,
Lookahead's side branch), the same per-step acceptance, and verify logits equal to 1e-5."""

from __future__ import annotations

import pytest
import torch

from specbench.config import compose
from specbench.decoding import (
    Autoregressive,
    DynamicVerifier,
    PromptLookup,
    Tree,
    speculative_generate,
)
from specbench.lookahead import Lookahead
from specbench.static_verify import BUCKETS, StaticVerifier, bucket, padded_mask
from specbench.target import load_target

from .test_decoding import Oracle, drafts, greedy_reference


def test_buckets_and_the_padded_mask():
    assert [bucket(q) for q in (1, 2, 3, 5, 16, 17, 64, 65, 130)] == [1, 2, 4, 8, 16, 32, 64,
                                                                       128, 192]
    allowed = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    m = padded_mask(allowed, 3, 4, 10, torch.float32)[0, 0] == 0
    assert m[:, :3].all() and not m[:, 7:].any()  # the cache; nothing past the block
    assert m[:2, 3:5].tolist() == [[True, False], [True, True]]
    assert not m[:2, 5:7].any()  # real rows never see padding
    assert m[2:, 5:7].tolist() == [[True, False], [False, True]]  # padding sees itself only


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_static_path_is_exact_for_every_proposer(model):
    target = load_target(compose([f"model={model}"]).model)
    medusa, eagle = drafts(target)
    g = torch.Generator().manual_seed(3)
    for trial in range(2):
        prompt = torch.randint(0, 256, (9 + trial,), generator=g).tolist()
        ref = greedy_reference(target, prompt, 40)
        for make in (Autoregressive, PromptLookup, lambda r=ref, p=prompt: Oracle(r, len(p), k=7),
                     lambda: medusa.make_proposer("tree"), lambda: medusa.make_proposer("chain"),
                     lambda: eagle.make_proposer("tree"), lambda: eagle.make_proposer("chain"),
                     lambda: Lookahead(4, 5, 5)):
            dyn = speculative_generate(target, make(), prompt, 40, set())
            sta = speculative_generate(target, make(), prompt, 40, set(), verify="static")
            assert sta.tokens == ref == dyn.tokens, (model, make().name, trial)
            assert sta.accepted == dyn.accepted and sta.draft_nodes == dyn.draft_nodes


def test_static_verify_logits_match_the_dynamic_forward():
    target = load_target(compose(["model=tiny-llama"]).model)
    prompt = list(range(20, 33))
    tree = Tree([5, 6, 7, 8, 9], [-1, 0, 0, 1, -1])  # branches, so the mask is not causal
    n = len(prompt) - 1
    tokens = [prompt[-1], *tree.tokens]
    positions = [n + d for d in [0, *tree.depths()]]
    dyn = DynamicVerifier(target.model, target.device)
    dyn.prefill(prompt[:-1])
    logits_d, hidden_d = dyn.verify(n, tokens, positions, tree)
    sv = StaticVerifier(target.model, target.device, 256)
    sv.prefill(prompt[:-1])
    logits_s, hidden_s = sv.verify(n, tokens, positions, tree)
    assert bucket(len(tokens)) == 8 and logits_s.shape == logits_d.shape == (6, 320)
    torch.testing.assert_close(logits_s, logits_d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden_s[-1], hidden_d[-1], atol=1e-5, rtol=1e-5)
    # stale entries from a longer earlier step are hidden: verify a shorter block at the same
    # place and get what a fresh cache gives
    short = StaticVerifier(target.model, target.device, 256)
    short.prefill(prompt[:-1])
    a, _ = short.verify(n, tokens[:2], positions[:2], Tree([5], [-1]))
    b, _ = sv.verify(n, tokens[:2], positions[:2], Tree([5], [-1]))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_a_full_static_cache_is_refused():
    target = load_target(compose(["model=tiny-llama"]).model)
    sv = StaticVerifier(target.model, target.device, BUCKETS[-1] + 8)
    with pytest.raises(ValueError, match="leaves no room"):
        sv.prefill(list(range(10)))


class Recorder:
    """Wraps a proposer and records every proposal."""

    def __init__(self, inner):
        self.inner, self.name, self.proposals = inner, inner.name, []

    def __getattr__(self, key):
        return getattr(self.inner, key)

    def propose(self, ids):
        p = self.inner.propose(ids)
        self.proposals.append((list(p.tokens), list(p.parents)) if isinstance(p, Tree) else p)
        return p


@pytest.mark.parametrize("kind", ["chain", "tree"])
def test_the_eagle3_draft_over_a_static_cache_proposes_what_the_dynamic_one_does(kind):
    """The draft's own forwards with fixed shapes (decode.verify=static|compiled|graphs): the
    same proposals at every step as over the growing cache, so the same accepted lengths."""
    target = load_target(compose(["model=tiny-llama"]).model)
    _, eagle = drafts(target)
    prompt = list(range(30, 41))
    runs = {}
    for mode in ("dynamic", "static"):
        rec = Recorder(eagle.make_proposer(kind))
        res = speculative_generate(target, rec, prompt, 48, set(), verify=mode)
        runs[mode] = (res.tokens, res.accepted, rec.proposals, rec.inner.cache)
    assert runs["static"][:3] == runs["dynamic"][:3]
    assert type(runs["static"][3]).__name__ == "StaticDraftCache"
    assert type(runs["dynamic"][3]).__name__ == "DraftCache"
    assert len(runs["static"][2]) >= 10  # enough steps to reuse (and crop) the buffer


def test_static_draft_forwards_match_the_dynamic_ones_and_hide_stale_slots():
    target = load_target(compose(["model=tiny-llama"]).model)
    _, eagle = drafts(target)
    h = eagle.fc.weight.shape[0]
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(1, 12, h, generator=g)
    ids = torch.randint(0, 256, (1, 12), generator=g)
    dyn, sta = eagle.new_cache(), eagle.new_cache("static", 64)
    with torch.no_grad():
        a = eagle.extend(hidden[:, :8], ids[:, :8], 0, dyn)
        b = eagle.extend(hidden[:, :8], ids[:, :8], 0, sta, eager=True)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # a 4-token speculative block, cropped away, then 2 real tokens in its slots
        eagle.extend(hidden[:, 8:12], ids[:, 8:12], 8, sta)
        sta.crop(8)
        assert len(sta) == 8
        a = eagle.extend(hidden[:, 8:10], ids[:, 8:10], 8, dyn)
        b = eagle.extend(hidden[:, 8:10], ids[:, 8:10], 8, sta)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert len(sta) == len(dyn) == 10
        with pytest.raises(ValueError, match="static draft cache .* is full"):
            sta.prepare(sta.max_len - 9, None, "cpu")
