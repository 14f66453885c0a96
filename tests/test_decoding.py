"""The lossless decoder: every proposer reproduces plain greedy decoding token for token, and
EAGLE-3's inference path computes what training-time test trained."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from specbench.algorithms import CONFIGS
from specbench.algorithms.eagle3 import Eagle3, Eagle3Config
from specbench.algorithms.medusa import Medusa, MedusaConfig
from specbench.config import compose
from specbench.decoding import Autoregressive, PromptLookup, speculative_generate
from specbench.target import FeatureSpec, load_target


class Oracle:
    """Proposes the true continuation with every third draft token corrupted: exercises
    multi-token acceptance, rejection in the middle, and cache cropping."""

    name = "oracle"

    def __init__(self, reference, prompt_len, k=5):
        self.ref, self.p, self.k = reference, prompt_len, k

    def start(self, ids, out):
        pass

    def propose(self, ids):
        pos = len(ids) - self.p
        out = list(self.ref[pos: pos + self.k])
        for i in range(2, len(out), 3):
            out[i] = (out[i] + 1) % 256
        return out

    def accept(self, ids, n_new, out):
        pass


@torch.no_grad()
def greedy_reference(target, prompt, n):
    """Plain greedy decoding: a full forward over the whole sequence, argmax, n times (no
    generate(): its min_new_tokens masks EOS, and then it is not greedy where greedy picks EOS)."""
    ids = list(prompt)
    for _ in range(n):
        logits = target.model(input_ids=torch.tensor([ids])).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


def drafts(target):
    torch.manual_seed(0)
    medusa = Medusa(OmegaConf.structured(MedusaConfig(num_heads=3)), 64, 320,
                    target.lm_head.weight)
    eagle = Eagle3(OmegaConf.structured(Eagle3Config(ttt_length=4, aux_layers=[0, 1, 2])),
                   target.config, target.embed_tokens.weight, target.lm_head.weight,
                   torch.arange(320))
    with torch.no_grad():
        for p in list(medusa.parameters()) + list(eagle.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    return medusa.eval(), eagle.eval()


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_every_proposer_is_exact(model):
    target = load_target(compose([f"model={model}"]).model)
    medusa, eagle = drafts(target)
    g = torch.Generator().manual_seed(1)
    for trial in range(3):
        prompt = torch.randint(0, 256, (7 + trial,), generator=g).tolist()
        ref = greedy_reference(target, prompt, 40)
        proposers = [Autoregressive(), PromptLookup(), Oracle(ref, len(prompt)),
                     medusa.make_proposer(), eagle.make_proposer()]
        for prop in proposers:
            res = speculative_generate(target, prop, prompt, 40, eos_ids=set())
            assert res.tokens == ref, (model, prop.name, trial)
            assert res.target_forwards == len(res.accepted) + 1  # + the prefill
            assert sum(res.accepted) + res.target_forwards >= len(res.tokens)
        ar = speculative_generate(target, Autoregressive(), prompt, 40, set())
        assert ar.target_forwards == 40 and ar.tau == 1.0
        oracle = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 40, set())
        assert max(oracle.accepted) == 2 and oracle.tau > 1.8


def test_stops_at_eos_and_budget():
    target = load_target(compose(["model=tiny-llama"]).model)
    prompt = list(range(10, 20))
    ref = greedy_reference(target, prompt, 30)
    eos = ref[12]
    res = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 30, eos_ids={eos})
    assert res.tokens == ref[: ref.index(eos) + 1]
    res = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 9, eos_ids=set())
    assert res.tokens == ref[:9]


def test_acceptance_by_position_counts_reached_and_accepted_positions():
    """The Oracle's third token is always wrong: positions 0 and 1 are always accepted,
    position 2 never, and positions 3-4 are never reached."""
    from specbench.evaluate import acceptance_by_position

    target = load_target(compose(["model=tiny-llama"]).model)
    prompt = list(range(10, 20))
    ref = greedy_reference(target, prompt, 30)
    res = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 30, eos_ids=set())
    reached, hits = res.acceptance_by_position()
    steps = len(res.accepted)
    assert res.draft_depth[:-1] == [5] * (steps - 1)
    full = sum(d == 5 for d in res.draft_depth)  # the budget trims the last draft
    assert full >= steps - 1 and reached[0] == steps
    assert hits[:2] == reached[:2] and reached[2] >= full and hits[2] == 0
    assert reached[3:] == [0, 0] and hits[3:] == [0, 0]
    row = {"m": {"accept_reached": reached, "accept_hits": hits}}
    assert acceptance_by_position([row, row], "m") == [1.0, 1.0, 0.0]
    assert acceptance_by_position([{"m": {}}], "m") == []  # a record from before the counts
    # a hand-made history: accepted 1 of depth 3, then 3 of 3, then 0 of 2
    res.accepted, res.draft_depth = [1, 3, 0], [3, 3, 2]
    assert res.acceptance_by_position() == ([3, 2, 1], [2, 1, 1])


def test_prompt_lookup_proposes_what_followed_the_last_ngram():
    pl = PromptLookup(max_ngram=3, num_draft=4)
    assert pl.propose([1, 2, 3, 4, 5, 9, 2, 3]) == [4, 5, 9, 2]
    assert pl.propose([7, 8, 9]) == []
    assert pl.propose([5, 1, 5]) == [1, 5]


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_eagle3_inference_matches_training_time_test(model):
    """Chain drafting from real position t with the true next tokens equals TTT step k at t."""
    target = load_target(compose([f"model={model}"]).model)
    _, eagle = drafts(target)
    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(2))
    feats = target.features(ids, torch.ones_like(ids),
                            FeatureSpec(layers=tuple(eagle.aux_layers), final_hidden=True))
    aux = [feats.layers[i] for i in eagle.aux_layers]
    with torch.no_grad():
        train_steps = eagle.ttt_forward(aux, ids)
        hidden0 = eagle.fc(torch.cat(aux, -1))
        for t in (3, 6):
            cache = eagle.new_cache()
            h = eagle.extend(hidden0[:, : t + 1], ids[:, 1: t + 2], 0, cache)[:, -1:]
            torch.testing.assert_close(h[0, 0], train_steps[0][0, t], rtol=1e-5, atol=1e-5)
            for k in range(1, eagle.ttt_length):
                h = eagle.extend(h, ids[:, t + 1 + k: t + 2 + k], t + k, cache)
                torch.testing.assert_close(h[0, 0], train_steps[k][0, t], rtol=1e-5, atol=1e-5)


# per-algorithm settings that only make the tiny runs faster
FAST = {"eagle3": {"algorithm.ttt_length": 2, "algorithm.draft_vocab_size": 64}}


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_evaluate_a_trained_run(tmp_path, conv_file, algorithm):
    import json

    from specbench.algorithms import get_algorithm
    from specbench.evaluate import evaluate
    from specbench.trainer import train

    from .conftest import tiny_overrides

    extra = FAST.get(algorithm, {})
    over = tiny_overrides(conv_file, **{"algorithm": algorithm, "trainer.max_steps": 2, **extra})
    train(compose(over), tmp_path / "run")
    result = evaluate(tmp_path / "run", {"num_prompts": 3, "max_new_tokens": 12})
    on_disk = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert on_disk["settings"]["num_prompts"] == 3 and len(on_disk["per_prompt"]) == 3
    assert on_disk["settings"]["lookahead"] == {"level": 5, "window": 7, "guess": 7,
                                                "variant": "reference"}
    overall = result["overall"]
    assert set(overall) == {"autoregressive", "prompt_lookup", "lookahead",
                            *(f"{algorithm}_{kind}" for kind in get_algorithm(algorithm).proposers)}
    assert all(m["exact"] for m in overall.values())
    assert overall["autoregressive"]["tau"] == 1.0 and overall["autoregressive"]["speedup"] == 1.0
    for kind in get_algorithm(algorithm).proposers:  # chain, tree, block: each declared kind
        assert overall[f"{algorithm}_{kind}"]["tau"] >= 1.0
    assert set(result["per_category"]) <= {"writing", "roleplay", "reasoning", "math", "coding",
                                           "extraction", "stem", "humanities", "everyday",
                                           "summarization"}


def test_tree_verify_logits_equal_sequential_decoding_of_each_path():
    from transformers import DynamicCache

    from specbench.decoding import Tree, _target_forward, tree_attention_mask

    target = load_target(compose(["model=tiny-qwen2"]).model)
    model = target.model
    prefix = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(4))
    tree = Tree([11, 12, 13, 14, 15, 16], [-1, -1, 0, 0, 2, 1])  # paths up to depth 3
    cache = DynamicCache()
    n = prefix.shape[1] - 1
    _target_forward(model, prefix[:, :-1], cache, torch.arange(n)[None])
    inputs = torch.tensor([[int(prefix[0, -1]), *tree.tokens]])
    pos = n + torch.tensor([[0, *tree.depths()]])
    out = _target_forward(model, inputs, cache, pos, tree_attention_mask(tree, n, torch.float32))
    for node in range(len(tree.tokens)):
        path, p = [], node
        while p >= 0:
            path.insert(0, tree.tokens[p])
            p = tree.parents[p]
        with torch.no_grad():
            seq = model(input_ids=torch.cat([prefix, torch.tensor([path])], 1)).logits
        torch.testing.assert_close(out.logits[0, node + 1], seq[0, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[0, 0], model(input_ids=prefix).logits[0, -1],
                               rtol=1e-5, atol=1e-5)


class OracleTree(Oracle):
    """The true continuation as one branch among decoys, shuffled in BFS order."""

    def propose(self, ids):
        from specbench.decoding import Tree

        pos = len(ids) - self.p
        truth = list(self.ref[pos: pos + 4])
        tokens, parents, prev = [], [], -1
        for d, tok in enumerate(truth):
            tokens += [(tok + 7) % 256, tok if d != 2 else (tok + 1) % 256]
            parents += [prev, prev]
            prev = len(tokens) - 1
        return Tree(tokens, parents)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_tree_decoding_is_exact(model):
    from specbench.algorithms.medusa import default_tree

    target = load_target(compose([f"model={model}"]).model)
    medusa, eagle = drafts(target)
    prompt = list(range(30, 40))
    ref = greedy_reference(target, prompt, 40)
    res = speculative_generate(target, OracleTree(ref, len(prompt)), prompt, 40, set())
    assert res.tokens == ref and max(res.accepted) == 2
    for proposer in (medusa.make_proposer("tree"),
                     eagle.make_proposer("tree", top_k=4, depth=3, total_token=21)):
        res = speculative_generate(target, proposer, prompt, 40, set())
        assert res.tokens == ref, proposer.name
    tree = default_tree(3, size=32)
    assert len(tree) == 32 and all(c[:-1] in tree for c in tree if len(c) > 1)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_eagle3_dynamic_tree_with_top_k_1_is_the_chain(model):
    from specbench.decoding import Tree, VerifyOutput

    target = load_target(compose([f"model={model}"]).model)
    _, eagle = drafts(target)
    chain = eagle.make_proposer(num_draft=4)
    tree = eagle.make_proposer("tree", top_k=1, depth=3, total_token=5)
    with torch.no_grad():
        out = target.model(input_ids=torch.arange(50, 61)[None], output_hidden_states=True)
    ids = list(range(50, 61)) + [int(out.logits[0, -1].argmax())]
    chain.start(ids, VerifyOutput(out.hidden_states))
    tree.start(ids, VerifyOutput(out.hidden_states))
    t = tree.propose(ids)
    assert isinstance(t, Tree) and t.is_chain() and t.tokens == chain.propose(ids)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("shape", [(5, 7, 7), (3, 4, 2), (4, 1, 0)])
def test_lookahead_is_exact(model, shape):
    from specbench.lookahead import Lookahead

    target = load_target(compose([f"model={model}"]).model)
    g = torch.Generator().manual_seed(3)
    for trial in range(2):
        prompt = torch.randint(0, 256, (9 + trial,), generator=g).tolist()
        ref = greedy_reference(target, prompt, 48)
        res = speculative_generate(target, Lookahead(*shape), prompt, 48, eos_ids=set())
        assert res.tokens == ref, (model, shape, trial)
        assert res.target_forwards == len(res.accepted) + 1
        assert len(res.tokens) <= res.target_forwards + sum(res.accepted)


def test_lookahead_side_branch_layout_and_pool():
    """The Jacobi window: positions, visibility (each column is one trajectory over level 0's
    prefix), and the n-grams collected from the columns after one step."""
    from specbench.decoding import VerifyOutput
    from specbench.lookahead import Lookahead

    la = Lookahead(level=3, window=3, guess=2)
    la.levels = [[10, 11, 12], [20, 21, 22]]  # level 0 (oldest), level 1 (last)
    tree = la.propose([1, 2, 5])
    side = tree.side
    # cells: level 0 cols 1,2; level 1 cols 0,1,2
    assert side.tokens == [11, 12, 20, 21, 22]
    assert side.offsets == [1, 2, 1, 2, 3]
    v = side.visible.int().tolist()  # over [root, 11, 12, 20, 21, 22]
    assert v == [[1, 1, 0, 0, 0, 0],   # 11 sees root + itself
                 [1, 1, 1, 0, 0, 0],   # 12 sees root, 11, itself
                 [1, 0, 0, 1, 0, 0],   # 20 (col 0) sees root + itself
                 [1, 1, 0, 0, 1, 0],   # 21 (col 1) sees root, 11, itself
                 [1, 1, 1, 0, 0, 1]]   # 22 (col 2) sees root, 11, 12, itself
    assert tree.tokens == []  # empty pool: nothing to verify yet
    # outputs after the 5 side tokens; the last level's (20, 21, 22) become the new level
    la.accept([1, 2, 5, 7], 1, VerifyOutput((), side_greedy=[0, 0, 30, 31, 32]))
    assert la.levels == [[20, 21, 22], [30, 31, 32]]
    assert la.pool == {5: {(20, 30): None}, 11: {(21, 31): None}, 12: {(22, 32): None}}
    la.pool[7] = {(8, 9): None, (8, 4): None}
    tree = la.propose([1, 2, 5, 7])
    assert tree.tokens == [8, 9, 4] and tree.parents == [-1, 0, 0]  # a trie of the guesses
