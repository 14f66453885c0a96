"""Issue 11: the decoder's figures and baselines follow the references. tau is EAGLE's and
Spec-Bench's (accepted + 1 per verify step, prefill excluded); the draft nodes per step are
recorded; Lookahead follows lade (warm-up, LRU pool, no bonus after a full match) with
specbench's older behaviour as an option; prompt lookup takes the earliest match (the reference,
transformers) or the latest; an evaluation of a finished run may override decoding-only
algorithm settings and nothing else."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch

from specbench.config import compose
from specbench.decoding import (
    Autoregressive,
    PromptLookup,
    Tree,
    VerifyOutput,
    speculative_generate,
)
from specbench.errors import UserError
from specbench.lookahead import Lookahead
from specbench.target import load_target

from .test_decoding import Oracle, greedy_reference


@pytest.fixture(scope="module")
def target():
    return load_target(compose(["model=tiny-llama"]).model)


def test_greedy_reference_is_plain_greedy_where_greedy_picks_eos(target):
    """generate(min_new_tokens=n) masks the EOS token: with EOS = a token greedy picks, its
    output was not greedy. The plain loop ignores the generation config."""
    prompt = list(range(40, 49))
    ref = greedy_reference(target, prompt, 12)
    target.model.generation_config.eos_token_id = ref[3]
    try:
        assert greedy_reference(target, prompt, 12) == ref
    finally:
        target.model.generation_config.eos_token_id = target.tokenizer.eos_token_id
    assert speculative_generate(target, Autoregressive(), prompt, 12, set()).tokens == ref


def test_tau_is_accepted_plus_one_per_verify_step(target):
    prompt = list(range(10, 20))
    ref = greedy_reference(target, prompt, 30)
    ar = speculative_generate(target, Autoregressive(), prompt, 30, set())
    assert ar.tau == 1.0 and ar.tokens_per_forward == 1.0 and ar.step_tokens == [1] * 29
    res = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 30, set())
    assert res.tokens == ref
    steps = len(res.accepted)
    assert res.step_tokens == [a + 1 for a in res.accepted]
    assert res.tau == pytest.approx((sum(res.accepted) + steps) / steps)
    assert res.tokens_per_forward == pytest.approx(30 / (steps + 1))
    assert res.tau > res.tokens_per_forward  # the prefill no longer counts
    assert res.draft_nodes[0] == 5 and max(res.draft_nodes) <= 5
    # the last step cut by the budget still counts accepted + 1 (as the reference does)
    cut = speculative_generate(target, Oracle(ref, len(prompt)), prompt, 9, set())
    assert cut.tokens == ref[:9] and sum(cut.step_tokens) >= len(cut.tokens) - 1
    assert cut.step_tokens == [a + 1 for a in cut.accepted]


class FullGuess:
    """Proposes the true next 3 tokens as a tree whose leaf drops the bonus (lade's rule)."""

    name = "full_guess"

    def __init__(self, ref, prompt_len):
        self.ref, self.p = ref, prompt_len

    def start(self, ids, out):
        pass

    def propose(self, ids):
        pos = len(ids) - self.p
        return Tree(list(self.ref[pos: pos + 3]), [-1, 0, 1][: len(self.ref[pos: pos + 3])],
                    no_bonus_at_leaf=True)

    def accept(self, ids, n_new, out):
        pass


def test_a_fully_matched_guess_commits_no_bonus_and_stays_exact(target):
    prompt = list(range(60, 70))
    ref = greedy_reference(target, prompt, 20)
    res = speculative_generate(target, FullGuess(ref, len(prompt)), prompt, 20, set())
    assert res.tokens == ref
    assert res.accepted[0] == 3 and res.step_tokens[0] == 3  # no bonus after the leaf
    for variant, drop in (("reference", True), ("specbench", False)):
        la = Lookahead(4, 3, 2, variant=variant)
        la.start([1, 2], None)
        assert la.propose([1, 2]).no_bonus_at_leaf == drop


def test_lookahead_reference_warm_up_fills_one_level_per_step():
    """lade: level 0 alone at start (W+N-3 prompt tokens, after the root's column), one level
    per step from the target's outputs, each level losing its first column; no pool and no
    verification until the LEVEL-1 levels stand."""
    la = Lookahead(level=4, window=3, guess=2)
    la.start(list(range(100, 110)), None)
    assert len(la.levels) == 1 and len(la.levels[0]) == 3 + 4 - 2
    tree = la.propose([1, 2, 5])
    assert tree.tokens == [] and tree.side.tokens == la.levels[0][1:]  # 4 = W+N-3 tokens
    la.accept([1, 2, 5, 7], 1, VerifyOutput((), side_greedy=[31, 32, 33, 34]))
    assert la.levels == [la.levels[0], [31, 32, 33, 34]] and len(la.levels[0]) == 4
    assert la.pool == {}
    side = la.propose([1, 2, 5, 7]).side
    assert side.tokens[3:] == [31, 32, 33, 34] and side.offsets[3:] == [1, 2, 3, 4]
    la.accept([1, 2, 5, 7, 8], 1, VerifyOutput((), side_greedy=[0] * 3 + [41, 42, 43, 44]))
    assert [len(lv) for lv in la.levels] == [3, 3, 3] and la.levels[2] == [42, 43, 44]
    assert la.pool == {} and not la.warming_up()
    spec = Lookahead(level=4, window=3, guess=2, variant="specbench")
    spec.start(list(range(100, 110)), None)
    assert [len(lv) for lv in spec.levels] == [3, 3, 3]  # all random at once


def test_lookahead_pool_lru_against_oldest_first():
    for variant, kept in (("reference", [(2,), (1,), (3,)]), ("specbench", [(1,), (2,), (3,)])):
        la = Lookahead(level=3, window=1, guess=3, variant=variant)
        bucket = OrderedDict()
        for g in [(1,), (2,), (1,), (3,)]:
            la._remember(bucket, g)
        assert list(bucket) == kept, variant
        la._remember(bucket, (4,))  # full: the least recently used / the oldest goes
        assert list(bucket) == kept[1:] + [(4,)], variant


@pytest.mark.parametrize("shape", [(5, 7, 7), (3, 4, 2)])
def test_both_lookahead_variants_are_exact(target, shape):
    prompt = torch.randint(0, 256, (9,), generator=torch.Generator().manual_seed(5)).tolist()
    ref = greedy_reference(target, prompt, 40)
    for variant in ("reference", "specbench"):
        res = speculative_generate(target, Lookahead(*shape, variant=variant), prompt, 40, set())
        assert res.tokens == ref, (shape, variant)
    with pytest.raises(UserError, match="decode.lookahead.variant='lade'"):
        Lookahead(variant="lade")


def test_prompt_lookup_earliest_or_latest_match():
    ids = [1, 2, 3, 9, 1, 2, 3, 8, 6, 1, 2, 3]
    assert PromptLookup(3, 2).propose(ids) == [9, 1]  # the reference's and transformers' rule
    assert PromptLookup(3, 2, match="latest").propose(ids) == [8, 6]
    # the first occurrence with a continuation: the n-gram overlapping the end still counts
    assert PromptLookup(2, 3).propose([5, 5, 5]) == [5]
    with pytest.raises(ValueError, match="decode.prompt_lookup_match='first'"):
        PromptLookup(match="first")


def test_decode_config_offers_the_variants():
    e = compose(["model=tiny-llama", "decode.lookahead.variant=specbench",
                 "decode.prompt_lookup_match=latest"]).decode
    assert str(e.lookahead.variant.value) == "specbench" and e.prompt_lookup_match.value == "latest"
    assert compose(["model=tiny-llama"]).decode.lookahead.variant.value == "reference"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from specbench.trainer import train

    from .conftest import tiny_overrides, write_conversations

    tmp = tmp_path_factory.mktemp("ref")
    conv = write_conversations(tmp / "conv.jsonl")
    train(compose(tiny_overrides(conv, **{"trainer.max_steps": 1, "decode.enabled": False})),
          tmp / "run")
    return tmp / "run"


def test_eval_json_reports_reference_tau_and_node_budget(tiny_run, caplog):
    from specbench.evaluate import TAU_DEFINITION, evaluate, print_table

    result = evaluate(tiny_run, {"num_prompts": 2, "max_new_tokens": 10}, label="tau")
    on_disk = json.loads((tiny_run / "eval-tau.json").read_text())
    assert on_disk["settings"]["tau_definition"] == TAU_DEFINITION
    assert on_disk["settings"]["lookahead"]["variant"] == "reference"
    assert on_disk["settings"]["prompt_lookup"]["match"] == "earliest"
    for where in (on_disk["overall"], *on_disk["per_category"].values()):
        ar = where["autoregressive"]
        assert ar["tau"] == 1.0 and ar["tokens_per_forward"] == 1.0
        assert ar["draft_nodes_mean"] == 0 and ar["draft_nodes_max"] == 0
    tree = on_disk["overall"]["medusa_tree"]
    assert 0 < tree["draft_nodes_mean"] <= tree["draft_nodes_max"]
    row = on_disk["per_prompt"][0]["medusa_tree"]
    assert row["tau"] == pytest.approx(row["step_tokens"] / row["verify_steps"])
    assert row["tokens_per_forward"] == pytest.approx(row["tokens"] / row["target_forwards"])
    with caplog.at_level("INFO"):
        print_table(result)
    assert "tok/fwd" in caplog.text and "nodes" in caplog.text


def test_a_proposer_budget_is_recorded_per_method():
    from omegaconf import OmegaConf

    from specbench.config import DecodeConfig
    from specbench.evaluate import _settings

    class Budgeted(Autoregressive):
        budget = {"total_token": 60, "depth": 6}

    e = OmegaConf.structured(DecodeConfig)
    cfg = OmegaConf.create({"model": {"dtype": "float32"}})
    s = _settings(e, cfg, {"autoregressive": Autoregressive, "x_tree": Budgeted}, {}, "cpu", 1, 1)
    assert s["budget"] == {"x_tree": {"total_token": 60, "depth": 6}}


def test_set_overrides_only_decoding_settings(tiny_run, capsys):
    from specbench.evaluate import main

    assert main([str(tiny_run), "--num-prompts", "1", "--max-new-tokens", "4", "--label", "t8",
                 "--tracker", "disabled", "--set", "algorithm.tree_size=8"]) == 0
    on_disk = json.loads((tiny_run / "eval-t8.json").read_text())
    assert on_disk["settings"]["algorithm_overrides"] == {"algorithm.tree_size": 8}
    assert on_disk["overall"]["medusa_tree"]["draft_nodes_max"] <= 8
    capsys.readouterr()
    assert main([str(tiny_run), "--num-prompts", "1", "--label", "bad", "--tracker", "disabled",
                 "--set", "algorithm.num_heads=2"]) == 2
    err = capsys.readouterr().err
    assert "--set algorithm.num_heads: algorithm.num_heads changes what the trained weights " \
           "mean" in err and "algorithm.tree_size" in err
    assert main([str(tiny_run), "--num-prompts", "1", "--label", "bad", "--tracker", "disabled",
                 "--set", "tree_size=8"]) == 2
    assert "give algorithm.KEY=VALUE" in capsys.readouterr().err
    assert main([str(tiny_run), "--num-prompts", "1", "--label", "bad", "--tracker", "disabled",
                 "--set", "algorithm.nope=1"]) == 2
    assert "algorithm.nope is not a setting of the medusa run" in capsys.readouterr().err
    assert not (tiny_run / "eval-bad.json").exists()


def test_decoding_overrides_with_a_fake_marked_dataclass(monkeypatch):
    from dataclasses import dataclass

    from omegaconf import OmegaConf

    from specbench import algorithms
    from specbench.config import setting
    from specbench.evaluate import decoding_overrides

    @dataclass
    class Fake:
        name: str = "fake"
        width: int = setting(4, "weights")
        fan: int = setting(2, "decoding", decoding=True)

    monkeypatch.setitem(algorithms.CONFIGS, "fake", Fake)
    cfg = OmegaConf.create({"algorithm": OmegaConf.structured(Fake)})
    assert decoding_overrides(cfg, ["algorithm.fan=5"]) == {"fan": 5} and cfg.algorithm.fan == 5
    with pytest.raises(UserError, match=r"algorithm.width changes what the trained weights mean "
                                        r"for the fake run.*algorithm.fan"):
        decoding_overrides(cfg, ["algorithm.width=8"])
    with pytest.raises(UserError, match="--set algorithm.fan=x"):
        decoding_overrides(cfg, ["algorithm.fan=x"])
