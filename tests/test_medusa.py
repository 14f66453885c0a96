"""Medusa: parity with an independent loop-by-loop reference, and explicit alignment tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specbench.algorithms.medusa import Medusa, MedusaConfig
from specbench.target import Features

B, L, H, V = 2, 12, 16, 24


def make(num_heads=3, num_layers=2, lm_head="per_head", labels="dataset", decay=0.8,
         hidden=H, vocab=V, target_w=None, perturb=True):
    cfg = OmegaConf.structured(MedusaConfig(num_heads=num_heads, num_layers=num_layers,
                                            lm_head=lm_head, labels=labels, loss_decay=decay))
    g = torch.Generator().manual_seed(1)
    if target_w is None:
        target_w = torch.randn(vocab, hidden, generator=g)
    m = Medusa(cfg, hidden, vocab, target_w)
    if perturb:  # leave the identity init so that blocks and heads matter
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, L), generator=g)
    mask = (torch.rand(B, L, generator=g) > 0.3).long()
    mask[:, :2] = 0
    hidden = torch.randn(B, L, H, generator=g)
    return hidden, {"input_ids": ids, "loss_mask": mask,
                    "attention_mask": torch.ones_like(ids)}


def reference(m: Medusa, hidden, ids, mask):
    """Straight from the definition, one (sequence, position, head) at a time."""
    total, accs = 0.0, []
    for k in range(m.num_heads):
        losses, correct = [], 0
        for b in range(hidden.shape[0]):
            for t in range(hidden.shape[1]):
                j = t + 2 + k  # head k at t predicts token t+2+k
                if j >= hidden.shape[1] or not mask[b, j]:
                    continue
                if m.labels == "dataset":
                    y = int(ids[b, j])
                else:  # the target's greedy prediction of token j, made at position j-1
                    y = int(torch.argmax(m.target_lm_head @ hidden[b, j - 1]))
                z = hidden[b, t]
                for layer in m.blocks[k].layers:
                    z = z + F.silu(layer.weight @ z + layer.bias)
                w = m.target_lm_head if m.shared else m.lm_heads[k].weight
                logits = w @ z
                losses.append(torch.logsumexp(logits, 0) - logits[y])
                correct += int(torch.argmax(logits) == y)
        total = total + m.decay ** k * torch.stack(losses).mean()
        accs.append(correct / len(losses))
    return total, accs


@pytest.mark.parametrize("lm_head", ["per_head", "shared"])
@pytest.mark.parametrize("labels", ["dataset", "self_distill"])
def test_parity_with_reference(lm_head, labels):
    m = make(lm_head=lm_head, labels=labels)
    hidden, b = batch()
    loss, counters = m.loss(Features(final_hidden=hidden), b)
    ref_loss, ref_accs = reference(m, hidden, b["input_ids"], b["loss_mask"])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for k, acc in enumerate(ref_accs):
        num, den = counters[f"top1/{k}"]
        assert float(num) / float(den) == pytest.approx(acc, abs=1e-9)
    # gradients too
    params = [p for p in m.parameters() if p.requires_grad]
    g1 = torch.autograd.grad(loss, params)
    g2 = torch.autograd.grad(ref_loss, params)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)


def test_alignment_head0_reads_token_two_ahead():
    """Features that encode x_{t+2} give head 0 (identity blocks, lm_head = I) 100% accuracy;
    an off-by-one in the label shift would drop it to chance."""
    n = 16
    m = make(num_heads=2, num_layers=1, hidden=n, vocab=n, target_w=torch.eye(n), perturb=False)
    ids = torch.stack([torch.randperm(n) for _ in range(3)])  # no repeats: shifts are visible
    hidden = torch.zeros(3, n, n)
    hidden[:, :-2] = 10 * F.one_hot(ids[:, 2:], n).float()
    mask = torch.ones_like(ids)
    _, c = m.loss(Features(final_hidden=hidden), {"input_ids": ids, "loss_mask": mask})
    assert float(c["top1/0"][0] / c["top1/0"][1]) == 1.0
    assert float(c["top1/1"][0] / c["top1/1"][1]) < 0.2
    assert int(c["top1/0"][1]) == 3 * (n - 2) and int(c["top1/1"][1]) == 3 * (n - 3)


def test_self_distill_labels_equal_data_with_a_perfect_target():
    """If the target's greedy token at p is x_{p+1}, self-distillation labels are the data."""
    n = 16
    ids = torch.stack([torch.randperm(n) for _ in range(2)])
    hidden = torch.randn(2, n, n)
    hidden[:, :-1] += 50 * F.one_hot(ids[:, 1:], n).float()
    mask = torch.ones_like(ids)
    mask[:, :5] = 0
    b = {"input_ids": ids, "loss_mask": mask}
    losses = []
    for labels in ("dataset", "self_distill"):
        m = make(num_heads=3, hidden=n, vocab=n, target_w=torch.eye(n), labels=labels)
        losses.append(m.loss(Features(final_hidden=hidden), b)[0])
    torch.testing.assert_close(losses[0], losses[1])


def test_loss_mask_selects_label_positions():
    m = make(num_heads=1)
    hidden, b = batch()
    b["loss_mask"].zero_()
    b["loss_mask"][0, 7] = 1  # only x_7 is trained: head 0 at t=5
    _, c = m.loss(Features(final_hidden=hidden), b)
    assert int(c["top1/0"][1]) == 1
    ref, _ = reference(m, hidden, b["input_ids"], b["loss_mask"])
    z = hidden[0, 5]
    for layer in m.blocks[0].layers:
        z = z + F.silu(layer.weight @ z + layer.bias)
    logits = m.lm_heads[0].weight @ z
    expected = torch.logsumexp(logits, 0) - logits[b["input_ids"][0, 7]]
    torch.testing.assert_close(ref, expected)


def test_decay_weights_heads():
    hidden, b = batch()
    m1 = make(decay=1.0)
    m2 = make(decay=0.5)
    _, c = m1.loss(Features(final_hidden=hidden), b)
    per_head = [float(c[f"loss/{k}"][0] / c[f"loss/{k}"][1]) for k in range(3)]
    l2 = m2.loss(Features(final_hidden=hidden), b)[0]
    assert float(l2) == pytest.approx(sum(0.5 ** k * x for k, x in enumerate(per_head)), rel=1e-5)


def test_blocks_are_independent_and_start_as_identity():
    target_w = torch.randn(V, H)
    m = make(num_heads=2, num_layers=3, target_w=target_w, perturb=False)
    ptrs = {p.data_ptr() for p in m.parameters()}
    assert len(ptrs) == len(list(m.parameters()))  # no block object repeated
    h = torch.randn(5, H)
    for k in range(2):
        torch.testing.assert_close(m.head_logits(k, h), h @ target_w.T)
    # per-head lm_heads are copies, not views of the target
    m.lm_heads[0].weight.data.add_(1.0)
    assert not torch.equal(m.lm_heads[0].weight, m.lm_heads[1].weight)


def test_shared_lm_head_is_frozen_and_not_saved():
    m = make(lm_head="shared")
    names = set(m.trainable_state_dict())
    assert names == {f"blocks.{k}.layers.{j}.{p}" for k in range(3) for j in range(2)
                     for p in ("weight", "bias")}
    assert all(p.requires_grad for p in m.parameters())
    assert not any("target_lm_head" in n for n, _ in m.named_parameters())


def test_state_dict_names_follow_vllm_medusa():
    m = make(num_heads=2, num_layers=1)
    assert set(m.trainable_state_dict()) == {
        "blocks.0.layers.0.weight", "blocks.0.layers.0.bias", "blocks.1.layers.0.weight",
        "blocks.1.layers.0.bias", "lm_heads.0.weight", "lm_heads.1.weight"}


def test_flops_counter_formula():
    m = make(num_heads=2, num_layers=1, lm_head="per_head", labels="dataset")
    hidden, b = batch()
    _, c = m.loss(Features(final_hidden=hidden), b)
    trained = sum(int(c[f"top1/{k}"][1]) for k in range(2))
    assert float(c["draft_flops"][0]) == trained * (6 * H * H + 6 * H * V)
    assert float(c["draft_flops"][1]) == B * L


def test_tree_choices_are_configurable_and_checked():
    from omegaconf import OmegaConf

    from specbench.algorithms.medusa import Medusa, MedusaConfig, default_tree
    from specbench.errors import UserError

    head = torch.zeros(40, 8)
    cfg = OmegaConf.structured(MedusaConfig(num_heads=2))
    assert Medusa(cfg, 8, 40, head).tree_choices == default_tree(2, 32)
    cfg.tree_size = 5
    assert len(Medusa(cfg, 8, 40, head).tree_choices) == 5
    cfg.tree_choices = [[0], [1], [0, 0]]
    m = Medusa(cfg, 8, 40, head)
    assert m.tree_choices == [(0,), (1,), (0, 0)]
    assert m.make_proposer("tree").choices == [(0,), (1,), (0, 0)]
    for bad in ([[0, 0]], [[0], [0, 0, 0]], [[0], [0]], [[-1]]):
        cfg.tree_choices = bad
        with pytest.raises(UserError, match="algorithm.tree_choices"):
            Medusa(cfg, 8, 40, head)


# ------------------------------------------------ issue 11: a tree from measured accuracies
def test_held_out_pass_counts_hits_per_rank_and_training_does_not():
    from specbench.algorithms.medusa.model import RANKS

    m = make(num_heads=3, lm_head="per_head", labels="self_distill")
    hidden, b = batch()
    _, train_counters = m.loss(Features(final_hidden=hidden), b)
    assert not any(k.startswith("rank") for k in train_counters)  # golden curves unchanged
    m.eval()
    with torch.no_grad():
        _, c = m.loss(Features(final_hidden=hidden), b)
    mask = b["loss_mask"].bool()
    for k in range(3):
        span = L - 2 - k
        valid = mask[:, 2 + k:]
        greedy = (hidden @ m.target_lm_head.T).argmax(-1)  # target's token at t+1+k
        y = greedy[:, 1 + k: 1 + k + span][valid]
        logits = m.head_logits(k, hidden[:, :span][valid])
        rank = (logits > logits.gather(1, y[:, None])).sum(-1)
        for r in range(RANKS):
            num, den = c[f"rank{r}/{k}"]
            assert float(den) == y.numel() and int(num) == int((rank == r).sum()), (k, r)
        assert float(c[f"rank0/{k}"][0]) == float(c[f"top1/{k}"][0])  # same convention
    assert {k for k in c if not k.startswith("rank")} == set(train_counters)


def medusa_cfg(**kw):
    return OmegaConf.structured(MedusaConfig(num_heads=3, **kw))


def heldout(acc):
    return {f"rank{r}/{k}": a for k, row in enumerate(acc) for r, a in enumerate(row)}


def test_measured_tree_comes_from_the_calibrated_accuracies():
    from specbench.static_tree import measured_tree

    acc = [[0.7, 0.1] + [0.02] * 8, [0.5, 0.1] + [0.02] * 8, [0.4, 0.1] + [0.02] * 8]
    m = Medusa(medusa_cfg(tree="measured", tree_size=12), H, V, torch.randn(V, H))
    m.calibrate({"top1/0": 0.7, **heldout(acc)})
    assert m.rank_accuracy == acc
    assert m.tree_choices == measured_tree(acc, 12)
    proposer = m.make_proposer("tree")
    assert proposer.budget == {"nodes": 12, "tree": "measured"}
    assert sorted(proposer.choices) == sorted(measured_tree(acc, 12))
    # the default tree at the same budget, whatever was measured
    d = Medusa(medusa_cfg(tree_size=12), H, V, torch.randn(V, H))
    d.calibrate(heldout(acc))
    assert d.make_proposer("tree").budget == {"nodes": 12, "tree": "default"}
    assert d.tree_choices != m.tree_choices


def test_measured_tree_without_counters_falls_back_with_a_warning(capsys):
    from specbench.algorithms.medusa import default_tree

    m = Medusa(medusa_cfg(tree="measured", tree_size=20), H, V, torch.randn(V, H))
    m.calibrate({"top1/0": 0.5, "top1/1": 0.3})  # a run recorded before the rank counters
    err = capsys.readouterr().err
    assert "algorithm.tree=measured" in err and "no held-out per-rank head accuracies" in err
    assert "default tree of algorithm.tree_size=20 nodes" in err
    assert m.tree_choices == default_tree(3, 20)
    assert m.make_proposer("tree").budget == {"nodes": 20, "tree": "default"}


def test_tree_settings_are_decoding_only_and_exclusive():
    import dataclasses

    fields = {f.name: f.metadata.get("decoding") for f in dataclasses.fields(MedusaConfig)}
    assert {k for k, v in fields.items() if v} == {"tree", "tree_size", "tree_choices"}
    with pytest.raises(ValueError, match="algorithm.tree=measured .* algorithm.tree_choices"):
        MedusaConfig(tree="measured", tree_choices=[[0]])
    from specbench.errors import UserError

    Medusa.check_decode_settings(MedusaConfig(tree_size=2), 8)  # ranks 0, 1
    with pytest.raises(UserError, match="algorithm.tree=measured may use ranks 0..9"):
        Medusa.check_decode_settings(MedusaConfig(tree="measured", tree_size=2), 8)


def test_a_tiny_run_records_rank_accuracies_and_evaluates_a_measured_tree(conv_file, tmp_path):
    import json

    from specbench.config import compose
    from specbench.evaluate import evaluate
    from specbench.trainer import train

    from .conftest import tiny_overrides

    run = tmp_path / "run"
    train(compose(tiny_overrides(conv_file, **{"trainer.max_steps": 1})), run)
    metrics = json.loads((run / "summary.json").read_text())["eval_split"]["metrics"]
    assert {f"rank{r}/0" for r in range(10)} <= set(metrics)
    result = evaluate(run, {"num_prompts": 1, "max_new_tokens": 4}, label="measured",
                      algorithm_overrides=["algorithm.tree=measured",
                                           "algorithm.tree_size=16"])
    assert result["settings"]["budget"]["medusa_tree"] == {"nodes": 16, "tree": "measured"}


def test_serving_commands_name_vllm_032_and_the_exact_line():
    import json
    import shlex

    cfg = OmegaConf.create({"algorithm": {"num_heads": 3},
                            "model": {"source": "hub", "hub_id": "org/target",
                                      "revision": None, "path": None}})
    lines = Medusa.serving_commands("vllm", "/exports/medusa", cfg)
    text = "\n".join(lines)
    assert "vLLM <= 0.32" in text and "vLLM 0.33 removed Medusa" in text
    assert "SGLang: no Medusa support" in text
    serve = next(x.strip() for x in lines if x.strip().startswith("vllm serve"))
    argv = shlex.split(serve)
    assert argv[:3] == ["vllm", "serve", "org/target"] and argv[3] == "--speculative-config"
    assert json.loads(argv[4]) == {"method": "medusa", "model": "/exports/medusa",
                                   "num_speculative_tokens": 3}
    cfg.model.revision = "abc123"
    serve = next(x for x in Medusa.serving_commands("vllm", "/e", cfg) if "vllm serve" in x)
    assert "org/target --revision abc123 --speculative-config" in serve
