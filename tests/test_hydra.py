"""Hydra: parity with an independent loop-by-loop reference, explicit alignment tests (training
and decoding), config errors, fairness and the contract pieces the contract test cannot know."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specbench.algorithms.hydra import Hydra, HydraConfig
from specbench.errors import UserError
from specbench.target import Features

B, L, H, V = 2, 12, 16, 24
HEADS, KV_HEADS, HEAD_DIM, THETA, EPS = 4, 2, 4, 10000.0, 1e-6


def target_config(hidden=H, vocab=V):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, intermediate_size=32, num_attention_heads=HEADS,
                       num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, vocab_size=vocab,
                       rms_norm_eps=EPS, max_position_embeddings=64, rope_theta=THETA)


def make(perturb=True, hidden=H, vocab=V, embed=None, head=None, **kw):
    kw = {"num_heads": 3, "num_layers": 2, **kw}
    cfg = OmegaConf.structured(HydraConfig(**kw))
    g = torch.Generator().manual_seed(1)
    embed = torch.randn(vocab, hidden, generator=g) if embed is None else embed
    head = torch.randn(vocab, hidden, generator=g) if head is None else head
    torch.manual_seed(0)
    m = Hydra(cfg, target_config(hidden, vocab), embed, head)
    if perturb:  # leave the zero init so that every block matters
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
    return hidden, {"input_ids": ids, "loss_mask": mask, "attention_mask": torch.ones_like(ids)}


# ------------------------------------------------------------------ the independent reference
def rms(x, w):
    return w * (x / torch.sqrt(x.pow(2).mean() + EPS))


def rope(v, pos):
    """v [heads, d] rotated to position ``pos`` (rotate-half convention)."""
    d = v.shape[-1]
    ang = pos * THETA ** (-torch.arange(0, d, 2).float() / d)
    cos, sin = torch.cat([ang, ang]).cos(), torch.cat([ang, ang]).sin()
    return v * cos + torch.cat([-v[:, d // 2:], v[:, : d // 2]], dim=-1) * sin


def ref_prefix(m, row):
    """The prefix layer on one row [L, H], position by position."""
    lay, norm = m.prefix_embeding_layer.layers[0], m.prefix_embeding_layer.norm
    a, mlp = lay.self_attn, lay.mlp
    xs = [rms(row[j], lay.input_layernorm.weight) for j in range(row.shape[0])]
    keys = [rope((a.k_proj.weight @ x).view(KV_HEADS, -1), j) for j, x in enumerate(xs)]
    vals = [(a.v_proj.weight @ x).view(KV_HEADS, -1) for x in xs]
    out = []
    for p in range(row.shape[0]):
        q = rope((a.q_proj.weight @ xs[p]).view(HEADS, -1), p)
        heads = []
        for h in range(HEADS):
            g = h // (HEADS // KV_HEADS)
            s = torch.stack([q[h] @ keys[j][g] for j in range(p + 1)]) / math.sqrt(q.shape[-1])
            w = torch.softmax(s, 0)
            heads.append(sum(w[j] * vals[j][g] for j in range(p + 1)))
        mid = row[p] + a.o_proj.weight @ torch.cat(heads)
        n = rms(mid, lay.post_attention_layernorm.weight)
        y = mid + mlp.down_proj.weight @ (F.silu(mlp.gate_proj.weight @ n) * (mlp.up_proj.weight @ n))
        out.append(rms(y, norm.weight))
    return torch.stack(out)


def ref_head(m, k, x):
    for j, block in enumerate(m.hydra_mlp[k]):
        res = x if j else block.res_connection.weight @ x + block.res_connection.bias
        x = res + F.silu(block.linear.weight @ x + block.linear.bias)
    w = m.target_lm_head if m.shared else m.hydra_lm_head[k].weight
    return w @ x


def reference(m, hidden, ids, mask, noise=None):
    """Straight from the definition, one (sequence, position, head) at a time."""
    cfg_lm, cfg_t = m.lm_weight, m.teacher_weight
    states = torch.stack([ref_prefix(m, hidden[b]) for b in range(B)]) \
        if m.prefix_embeding_layer is not None else hidden
    total, accs = 0.0, []
    for k in range(m.num_heads):
        losses, correct = [], 0
        for b in range(hidden.shape[0]):
            def token(p, b=b):  # the teacher-forced token at position p
                if m.labels == "dataset":
                    return int(ids[b, p])
                return int(torch.argmax(m.target_lm_head @ hidden[b, p - 1]))

            for t in range(hidden.shape[1]):
                j = t + 2 + k
                if j >= hidden.shape[1] or not mask[b, j]:
                    continue
                s = states[b, t]
                parts = [s if noise is None or m.prefix_embeding_layer is not None
                         else s + noise[b, t]]
                for p in range(t + 1, t + 2 + k):  # x_{t+1} .. x_{t+1+k}
                    e = m.embed_weight[token(p)]
                    parts.append(e if noise is None else e + noise[b, p])
                logits = ref_head(m, k, torch.cat(parts))
                y = token(j)
                logp = torch.log_softmax(logits, 0)
                loss = cfg_lm * -logp[y]
                if cfg_t:
                    soft = torch.softmax(m.target_lm_head @ hidden[b, j - 1], 0)
                    loss = loss + cfg_t * -(soft * logp).sum()
                losses.append(loss)
                correct += int(torch.argmax(logits) == y)
        total = total + m.decay ** k * torch.stack(losses).mean()
        accs.append(correct / len(losses))
    return total, accs


SETTINGS = {
    "default": {},
    "per_head_dataset": {"lm_head": "per_head", "labels": "dataset", "num_layers": 1},
    "hydra++": {"prefix_attention": True, "lm_loss_weight": 0.0, "teacher_loss_weight": 1.0},
    "mixed": {"prefix_attention": True, "lm_loss_weight": 0.5, "teacher_loss_weight": 1.0,
              "loss_decay": 0.8, "lm_head": "per_head"},
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_parity_with_reference(setting):
    m = make(**SETTINGS[setting])
    hidden, b = batch()
    loss, counters = m.loss(Features(final_hidden=hidden), b)
    ref_loss, ref_accs = reference(m, hidden, b["input_ids"], b["loss_mask"])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert len(ref_accs) == m.num_heads
    for k, acc in enumerate(ref_accs):
        num, den = counters[f"top1/{k}"]
        assert float(num) / float(den) == pytest.approx(acc, abs=1e-9)
    params = [p for p in m.parameters() if p.requires_grad]
    for a, c in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref_loss, params)):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prefix", [False, True])
def test_parity_with_noise(prefix, monkeypatch):
    """The noise goes on h_t (without the prefix layer) and on every input embedding, at the
    position of the token it embeds, as in the reference."""
    m = make(prefix_attention=prefix, noise_alpha=5.0)
    hidden, b = batch()
    noise = torch.randn(B, L, H)
    monkeypatch.setattr(m, "noise", lambda hidden, mask: noise)
    loss, _ = m.loss(Features(final_hidden=hidden), b)
    ref, _ = reference(m, hidden, b["input_ids"], b["loss_mask"], noise)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)


def test_noise_is_seeded_scaled_and_off_in_eval():
    m = make(noise_alpha=5.0)
    hidden, b = batch()
    b["attention_mask"][1, 7:] = 0
    feats = Features(final_hidden=hidden)
    torch.manual_seed(3)
    a = m.loss(feats, b)[0]
    torch.manual_seed(3)
    assert torch.equal(a, m.loss(feats, b)[0])  # the same seed draws the same noise
    torch.manual_seed(4)
    assert not torch.equal(a, m.loss(feats, b)[0])
    quiet = make()
    m.eval()
    assert torch.equal(m.loss(feats, b)[0], quiet.eval().loss(feats, b)[0])  # none in eval
    n = m.noise(hidden, b["attention_mask"])
    assert n.abs().amax(dim=(1, 2)).tolist() <= [5.0 / math.sqrt(12 * H), 5.0 / math.sqrt(7 * H)]
    assert n[1].abs().max() > 0.9 * 5.0 / math.sqrt(7 * H)


# ------------------------------------------------------------------------------- alignment
def successor(n, seed=0):
    """A random n-cycle f (f(x) != x, no short cycles) and rows x_{p+1} = f(x_p)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    f = torch.empty(n, dtype=torch.long)
    f[order] = order.roll(-1)
    rows = []
    for start in range(3):
        row = [int(order[start * 5])]
        for _ in range(n - 1):
            row.append(int(f[row[-1]]))
        rows.append(row)
    return f, torch.tensor(rows)


def hand_built(n, f, read, num_heads=3, off=0):
    """Heads that output onehot(f^e(slot)) for one slot of their input: ``read="last"``, the
    last token embedding (e = 1 + off); ``read="state"``, h_t (e = k + 1 + off). lm_head =
    embedding = I. ``off`` != 0 is what a correct head would score if the code fed it inputs
    (or labels) one position off."""
    eye = torch.eye(n)
    m = make(perturb=False, hidden=n, vocab=n, embed=eye, head=eye, num_heads=num_heads,
             num_layers=1, labels="dataset")
    perm = eye[f]  # perm @ onehot(x) = onehot(f(x))
    with torch.no_grad():
        for k, mlp in enumerate(m.hydra_mlp):
            block = mlp[0]
            block.linear.bias.fill_(-30.0)  # SiLU(-30) ~ 0: the residual path alone
            w = torch.zeros(n, (k + 2) * n)
            if read == "last":
                w[:, (k + 1) * n:] = 10 * torch.linalg.matrix_power(perm.T, 1 + off)
            else:
                w[:, :n] = 10 * torch.linalg.matrix_power(perm.T, k + 1 + off)
            block.res_connection.weight.copy_(w)
            block.res_connection.bias.zero_()
    return m


@pytest.mark.parametrize("read", ["last", "state"])
def test_alignment_each_head_predicts_t_plus_2_plus_k(read):
    """Head k (hand-built) reads its last input embedding e(x_{t+1+k}), or h_t = onehot(x_{t+1})
    (the target's own next token), and outputs f of it: x_{t+2+k}. 100% at every head, exact
    denominators; a shift by one in the inputs or the labels would score 0."""
    n = 16
    f, ids = successor(n)
    hidden = torch.zeros(3, n, n)
    hidden[:, :-1] = F.one_hot(ids[:, 1:], n).float()  # h_t encodes x_{t+1}
    m = hand_built(n, f, read)
    b = {"input_ids": ids, "loss_mask": torch.ones_like(ids)}
    _, c = m.loss(Features(final_hidden=hidden), b)
    for k in range(3):
        assert float(c[f"top1/{k}"][0]) == float(c[f"top1/{k}"][1]) == 3 * (n - 2 - k), k
    for off in (-1, 1):  # one position off, either way: chance (here zero)
        _, c = hand_built(n, f, read, off=off).loss(Features(final_hidden=hidden), b)
        assert all(float(c[f"top1/{k}"][0]) / float(c[f"top1/{k}"][1]) < 0.2 for k in range(3))


def test_self_distill_reads_the_targets_greedy_tokens():
    """With labels=self_distill the inputs and labels are the target's greedy tokens: a target
    whose greedy token is always f(x) - 1 (mod n) scores the f-heads at 0, while
    labels=dataset on the same data scores 100%."""
    n = 16
    f, ids = successor(n)
    lies = (ids[:, 1:] + 1) % n  # the target "predicts" x_{p+1} + 1
    hidden = torch.zeros(3, n, n)
    hidden[:, :-1] = F.one_hot(lies, n).float()
    b = {"input_ids": ids, "loss_mask": torch.ones_like(ids)}
    m = hand_built(n, f, "last")
    assert float(m.loss(Features(final_hidden=hidden), b)[1]["top1/1"][0]) == 3 * (n - 3)
    m.labels = "self_distill"
    greedy_hits = float(m.loss(Features(final_hidden=hidden), b)[1]["top1/1"][0])
    assert greedy_hits < 0.2 * 3 * (n - 3)


def test_chain_and_tree_feed_each_head_its_own_path():
    """Decoding alignment: the chain drafts f(x), f(f(x)), .. after the pending token x; in the
    tree, every node's children are f of that node's own token."""
    from specbench.decoding import VerifyOutput

    n = 16
    f, _ = successor(n)
    m = hand_built(n, f, "last").eval()
    out = VerifyOutput(hidden_states=(torch.randn(1, 5, n),))
    chain = m.make_proposer("chain")
    chain.start([1, 2, 3, 4, 5], out)
    x = 5
    assert chain.propose([1, 2, 3, 4, 5]) == [int(f[x]), int(f[f[x]]), int(f[f[f[x]]])]
    choices = [(0,), (1,), (2,), (0, 0), (1, 0), (2, 0), (1, 0, 0)]
    tree = m.make_proposer("tree", choices=choices)
    assert tree.budget == {"nodes": 7}
    tree.start([1, 2, 3, 4, 5], out)
    t = tree.propose([1, 2, 3, 4, 5])
    assert t.tokens[0] == int(f[x]) and len(set(t.tokens[:3])) == 3
    for i, p in enumerate(t.parents):
        if p >= 0:
            assert t.tokens[i] == int(f[t.tokens[p]]), (i, p)


def test_prefix_layer_decoding_state_equals_training_state():
    """The prefix layer's KV cache over verified positions gives the same head state as the
    whole-row pass in training."""
    from specbench.decoding import VerifyOutput

    m = make(prefix_attention=True).eval()
    row = torch.randn(1, 9, H)
    full = m.head_states(row)
    chain = m.make_proposer("chain")
    chain.start([0] * 5, VerifyOutput(hidden_states=(row[:, :5],)))
    torch.testing.assert_close(chain.state, full[0, 4])
    chain.accept([0] * 9, 4, VerifyOutput(hidden_states=(row[:, 5:],)))
    torch.testing.assert_close(chain.state, full[0, 8], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ shapes, names, FLOPs
def test_state_names_shapes_and_frozen_buffers():
    m = make(perturb=False, num_heads=2, num_layers=2)
    names = set(m.trainable_state_dict())
    assert names == {f"hydra_mlp.{k}.{j}.{p}.{w}" for k in range(2) for j, p in
                     [(0, "linear"), (0, "res_connection"), (1, "linear")]
                     for w in ("weight", "bias")}
    assert m.hydra_mlp[1][0].linear.weight.shape == (H, 3 * H)  # [h, e(x_{t+1}), e(x_{t+2})]
    assert torch.count_nonzero(m.hydra_mlp[0][1].linear.weight) == 0  # zero init
    ptrs = {p.data_ptr() for p in m.parameters()}
    assert len(ptrs) == len(list(m.parameters()))  # no block object repeated
    plus = make(perturb=False, num_heads=2, prefix_attention=True, lm_head="per_head")
    extra = set(plus.trainable_state_dict()) - names
    assert {"hydra_lm_head.0.weight", "prefix_embeding_layer.norm.weight",
            "prefix_embeding_layer.layers.0.self_attn.q_proj.weight"} <= extra
    assert not any("embed_weight" in k or "target_lm_head" in k or "inv_freq" in k
                   for k in plus.trainable_state_dict())


def test_flops_counter_and_describe():
    m = make(num_heads=2, num_layers=2, labels="dataset", lm_head="per_head")
    hidden, b = batch()
    _, c = m.loss(Features(final_hidden=hidden), b)
    expect = sum(int(c[f"top1/{k}"][1]) * (6 * ((2 * (k + 2) + 1) * H * H) + 6 * H * V)
                 for k in range(2))
    assert float(c["draft_flops"][0]) == expect and float(c["draft_flops"][1]) == B * L
    d = m.describe()
    assert d["trainable_params"] == sum(p.numel() for p in m.parameters())
    assert d["draft_forward_flops_per_token"]["per_head"] == [
        2 * (2 * (k + 2) + 1) * H * H + 2 * H * V for k in range(2)]
    assert d["head_input_sizes"] == [2 * H, 3 * H]


# ------------------------------------------------------------------------------ config errors
@pytest.mark.parametrize("override,message", [
    ("algorithm.num_heads=0", "algorithm.num_heads=0 must be at least 1"),
    ("algorithm.num_layers=0", "algorithm.num_layers=0 must be at least 1"),
    ("algorithm.loss_decay=0", "algorithm.loss_decay=0.0 must be > 0"),
    ("algorithm.noise_alpha=-1", "algorithm.noise_alpha=-1.0 must be a finite number >= 0"),
    ("algorithm.teacher_loss_weight=-0.5", "algorithm.teacher_loss_weight=-0.5 must be"),
    ("algorithm.lm_loss_weight=0", "algorithm.lm_loss_weight and algorithm.teacher_loss_weight"),
    ("algorithm.tree_size=0", "algorithm.tree_size=0 must be at least 1"),
    ("algorithm.lm_head=both", "lm_head"),
    ("algorithm.labels=soft", "labels"),
    ("algorithm.prefix=true", "prefix"),
])
def test_bad_settings_fail_at_compose_time_naming_the_key(override, message):
    from specbench.config import compose_checked

    with pytest.raises(UserError) as err:
        compose_checked(["algorithm=hydra", override])
    assert message in str(err.value)


def test_composes_with_the_documented_defaults():
    from specbench.config import compose

    a = compose(["algorithm=hydra"]).algorithm
    assert (a.name, a.num_heads, a.num_layers, a.lm_head, a.labels, a.prefix_attention,
            a.lm_loss_weight, a.teacher_loss_weight, a.noise_alpha, a.loss_decay) == (
        "hydra", 4, 1, "shared", "self_distill", False, 1.0, 0.0, 0.0, 1.0)
    plus = compose(["algorithm=hydra", "algorithm.prefix_attention=true",
                    "algorithm.lm_loss_weight=0", "algorithm.teacher_loss_weight=1"]).algorithm
    assert plus.prefix_attention and plus.teacher_loss_weight == 1.0


def test_bad_tree_choices_and_ranks_are_refused():
    cfg = OmegaConf.structured(HydraConfig(num_heads=2))
    for bad in ([[0, 0]], [[0], [0, 0, 0]], [[0], [0]], [[-1]]):
        cfg.tree_choices = bad
        with pytest.raises(UserError, match="algorithm.tree_choices"):
            Hydra.check_decode_settings(cfg, V)
    cfg.tree_choices = [[0], [V]]
    with pytest.raises(UserError, match=f"algorithm.tree_choices uses rank {V}"):
        Hydra.check_decode_settings(cfg, V)
    cfg.tree_choices = None
    Hydra.check_decode_settings(cfg, V)


# ---------------------------------------------------------------------------- fairness, export
def test_fingerprint_equals_medusas_on_the_same_controlled_settings():
    from specbench.algorithms import REGISTRY
    from specbench.config import compose
    from specbench.fairness import fingerprint

    over = ["model=tiny-llama", "trainer.lr=3e-4", "data.max_rows=40"]
    fps = {name: fingerprint(compose([f"algorithm={name}", *over]), "sha") for name in REGISTRY}
    assert fps["hydra"] == fps["medusa"] == fps["eagle3"]
    assert fingerprint(compose(["algorithm=hydra", "trainer.lr=1e-4"]), "sha") != fps["hydra"]
    cfg = compose(["algorithm=hydra", "model=tiny-llama"])
    assert REGISTRY["hydra"].feature_spec(cfg.algorithm, None) == \
        REGISTRY["medusa"].feature_spec(cfg.algorithm, None)


def test_no_serving_format_and_the_refusal_says_why():
    assert Hydra.export_formats == ()
    assert set(Hydra.export_notes) == {"vllm", "sglang"}
    assert all("no Hydra loader" in note for note in Hydra.export_notes.values())
    from specbench.export import check_format

    for fmt in ("vllm", "sglang"):  # the refusal quotes the note, before any training
        with pytest.raises(UserError, match=f"No export is defined for algorithm 'hydra' "
                                            f".*no Hydra loader.*drop export=\\[{fmt}\\]"):
            check_format(fmt, Hydra.name, f"export=[{fmt}]")


def test_hydra_plus_plus_trains_resumes_and_decodes_exactly(tmp_path, monkeypatch):
    """The contract's checks run with the defaults; the Hydra++ options (prefix layer, teacher
    loss, noise) get resume-equality and greedy-exact decoding here."""
    from safetensors.torch import load_file

    from specbench.config import compose
    from specbench.decoding import Autoregressive, speculative_generate
    from specbench.target import load_target
    from specbench.trainer import train

    from .conftest import tiny_overrides, write_conversations

    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    over = tiny_overrides(write_conversations(tmp_path / "c.jsonl"), algorithm="hydra",
                          **{"trainer.max_steps": 2, "algorithm.prefix_attention": "true",
                             "algorithm.teacher_loss_weight": 1.0, "algorithm.noise_alpha": 5.0})
    train(compose(over), tmp_path / "full")
    train(compose(over), tmp_path / "part", stop_after_steps=1)
    train(compose(over + ["trainer.resume=true"]), tmp_path / "part")
    a = load_file(str(tmp_path / "full" / "draft.safetensors"))
    b = load_file(str(tmp_path / "part" / "draft.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    cfg = compose(over)
    target = load_target(cfg.model)
    draft = Hydra.from_state(cfg.algorithm, target, a).eval()
    prompt = list(range(40, 64))
    greedy = speculative_generate(target, Autoregressive(), prompt, 24, set())
    for kind in Hydra.proposers:
        res = speculative_generate(target, draft.make_proposer(kind), prompt, 24, set())
        assert res.tokens == greedy.tokens, kind
