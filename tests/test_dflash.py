"""DFlash (issue 13): the block loss against a deliberately simple reference (one sequence and
anchor at a time, one full boolean mask over [context; block] keys), a one-hot alignment test,
the anchor sampler, the block proposer (exact, and equal to the training forward), the config
rules and the FLOP count."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specbench.algorithms.dflash import DFlash, DFlashConfig, build_target_layer_ids
from specbench.config import compose, validate
from specbench.errors import UserError
from specbench.target import Features, load_target


def cfg_of(**kw):
    return OmegaConf.structured(DFlashConfig(**kw))


def make(model_name="tiny-llama", **kw):
    target = load_target(compose([f"model={model_name}"]).model)
    cfg = cfg_of(**kw)
    torch.manual_seed(0)
    m = DFlash.build(cfg, target)
    with torch.no_grad():  # away from the initialisation, so that every weight matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return target, cfg, m


# ----------------------------------------------------------------------------- the reference

def ref_rms(norm, x):
    return norm.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))


def ref_rope(x, pos, head_dim, theta):
    """x [..., n, d] at positions ``pos`` [n] (default RoPE, rotate-half layout)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = pos[:, None].float() * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def ref_layer(layer, x, ctx, anchor, c, theta):
    """One draft layer on one block ``x`` [B, H] anchored at ``anchor``, over the whole
    context ``ctx`` [S, H] with a boolean mask written from the definition."""
    att, nh, nkv, hd = layer.self_attn, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    block, length = x.shape[0], ctx.shape[0]
    xn = ref_rms(layer.input_layernorm, x)
    q = ref_rms(att.q_norm, (xn @ att.q_proj.weight.T).view(block, nh, hd)).transpose(0, 1)
    kb = ref_rms(att.k_norm, (xn @ att.k_proj.weight.T).view(block, nkv, hd)).transpose(0, 1)
    vb = (xn @ att.v_proj.weight.T).view(block, nkv, hd).transpose(0, 1)
    kc = ref_rms(att.k_norm, (ctx @ att.k_proj.weight.T).view(length, nkv, hd)).transpose(0, 1)
    vc = (ctx @ att.v_proj.weight.T).view(length, nkv, hd).transpose(0, 1)
    bpos = torch.arange(anchor, anchor + block)
    q, kb = ref_rope(q, bpos, hd, theta), ref_rope(kb, bpos, hd, theta)
    kc = ref_rope(kc, torch.arange(length), hd, theta)
    keys = torch.cat([kc, kb], 1).repeat_interleave(nh // nkv, 0)
    values = torch.cat([vc, vb], 1).repeat_interleave(nh // nkv, 0)
    allowed = torch.zeros(block, length + block, dtype=torch.bool)
    for qi in range(block):
        for j in range(length + block):
            allowed[qi, j] = j < anchor if j < length else True
    scores = (q @ keys.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~allowed, float("-inf"))
    out = (torch.softmax(scores, -1) @ values).transpose(0, 1).reshape(block, nh * hd)
    h = x + out @ att.o_proj.weight.T
    z = ref_rms(layer.post_attention_layernorm, h)
    mlp = layer.mlp
    return h + (F.silu(z @ mlp.gate_proj.weight.T) * (z @ mlp.up_proj.weight.T)) \
        @ mlp.down_proj.weight.T


def reference_loss(m: DFlash, feats: Features, ids, mask, theta, labels, gamma):
    """Loop over (sequence, valid anchor): loss, per-position accuracies and denominators."""
    c, block = m.draft_cfg, m.block_size
    terms, weights = [], []
    hits, counts = [0] * (block - 1), [0] * (block - 1)
    for bi in range(ids.shape[0]):
        length = ids.shape[1]
        cat = torch.cat([feats.layers[i][bi] for i in sorted(m.target_layers)], -1)
        ctx = ref_rms(m.hidden_norm, cat @ m.fc.weight.T)
        for a in range(length - 1):
            if not (mask[bi, a] and mask[bi, a + 1]):
                continue
            x = m.embed_weight[torch.tensor([int(ids[bi, a])] + [m.mask_token_id] * (block - 1))]
            for layer in m.layers:
                x = ref_layer(layer, x, ctx, a, c, theta)
            logits = ref_rms(m.norm, x) @ m.target_lm_head.T
            for k in range(1, block):
                if a + k >= length or not mask[bi, a + k]:
                    continue
                if labels == "dataset":
                    y = int(ids[bi, a + k])
                else:
                    y = int((m.target_lm_head @ feats.final_hidden[bi, a + k - 1]).argmax())
                terms.append(-torch.log_softmax(logits[k], -1)[y])
                weights.append(1.0 if gamma is None else math.exp(-(k - 1) / gamma))
                hits[k - 1] += int(logits[k].argmax() == y)
                counts[k - 1] += 1
    w = torch.tensor(weights)
    return (w * torch.stack(terms)).sum() / w.sum(), hits, counts


def _batch(length=13, seed=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (2, length), generator=g)
    mask = (torch.rand(2, length, generator=g) > 0.25).long()
    mask[1, -3:] = 0  # a padded tail
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "loss_mask": mask}


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("labels", ["self_distill", "dataset"])
@pytest.mark.parametrize("gamma", [7.0, None])
def test_block_loss_matches_reference(model_name, labels, gamma):
    target, cfg, m = make(model_name, num_layers=2, block_size=5, labels=labels,
                          loss_gamma=gamma, target_layers=[0, 2])
    m.eval()  # every valid anchor (fewer than num_anchors): the reference's anchors
    batch = _batch()
    feats = target.features(batch["input_ids"], batch["attention_mask"],
                            m.feature_spec(cfg, target.config))
    theta = target.config.rope_parameters["rope_theta"]
    loss, counters = m.loss(feats, batch)
    ref, hits, counts = reference_loss(m, feats, batch["input_ids"], batch["loss_mask"].bool(),
                                       theta, labels, gamma)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    for k in range(m.block_size - 1):
        num, den = counters[f"top1/{k}"]
        assert (float(num), float(den)) == (hits[k], counts[k])
    params = [p for p in m.parameters() if p.requires_grad]
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert len(names) == 3 + 2 * 11
    for name, a, r in zip(names, torch.autograd.grad(loss, params),
                          torch.autograd.grad(ref, params)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5, msg=name)


def test_the_chunked_lm_head_equals_one_logits_tensor(monkeypatch):
    from specbench import losses

    target, cfg, m = make(num_layers=1, block_size=4)
    m.eval()
    batch = _batch(length=20)
    feats = target.features(batch["input_ids"], batch["attention_mask"],
                            m.feature_spec(cfg, target.config))
    whole, _ = m.loss(feats, batch)
    g_whole = torch.autograd.grad(whole, m.fc.weight)[0]
    monkeypatch.setattr(losses, "CHUNK_ROWS", 7)
    chunked, _ = m.loss(feats, batch)
    assert torch.equal(whole, chunked) or float((whole - chunked).abs()) < 1e-6
    torch.testing.assert_close(torch.autograd.grad(chunked, m.fc.weight)[0], g_whole,
                               rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------------------- anchors

def test_anchor_sampler_valid_sorted_bounded_and_deterministic_in_eval():
    _, _, m = make(num_layers=1, num_anchors=4)
    mask = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0],
                         [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    valid = [{1, 2, 5, 6, 7, 8}, {0}, set()]
    m.train()
    seen = set()
    for _ in range(20):
        anchors, keep = m.sample_anchors(mask)
        assert anchors.shape == keep.shape == (3, 4)
        for r in range(3):
            a = anchors[r][keep[r]].tolist()
            assert a == sorted(set(a)) and set(a) <= valid[r]
            assert len(a) == min(4, len(valid[r]))
            assert (anchors[r][~keep[r]] == 0).all()
        seen.add(tuple(anchors[0].tolist()))
    assert len(seen) > 1  # resampled every call
    m.eval()
    a1, k1 = m.sample_anchors(mask)
    state = torch.get_rng_state()
    a2, k2 = m.sample_anchors(mask)
    assert torch.equal(torch.get_rng_state(), state)  # eval draws nothing
    assert torch.equal(a1, a2) and torch.equal(k1, k2)
    assert a1[0].tolist() == [1, 2, 6, 8]  # 4 of 6, evenly spaced: indices 0, 1, 3, 5
    assert a1[1][k1[1]].tolist() == [0] and not k1[2].any()


def test_a_batch_without_a_valid_anchor_gives_a_zero_loss_that_backpropagates():
    target, cfg, m = make(num_layers=1, block_size=3)
    batch = _batch()
    batch["loss_mask"] = torch.zeros_like(batch["loss_mask"])
    batch["loss_mask"][0, 4] = 1  # one assistant token: no two in a row
    feats = target.features(batch["input_ids"], batch["attention_mask"],
                            m.feature_spec(cfg, target.config))
    loss, counters = m.loss(feats, batch)
    assert float(loss.detach()) == 0.0 and loss.requires_grad and "top1/0" not in counters
    loss.backward()
    assert counters["draft_flops"][0] > 0


# ------------------------------------------------------------------------------- alignment

def _fit_block2(target, feature_shift: int, steps=200):
    """Block size 2 (one drafted token, the label x_{a+1}). The context at t one-hot encodes
    x_{t+feature_shift}; the lm_head names token j along axis j. x_0 is not an assistant token
    (an anchor at 0 has no context). Fitted on random permutations, scored on fresh ones
    (eval mode, so nothing memorised counts)."""
    torch.manual_seed(0)
    cfg = cfg_of(num_layers=1, block_size=2, labels="dataset", target_layers=[0])
    m = DFlash.build(cfg, target)
    m.target_lm_head = torch.zeros(320, 64)
    m.target_lm_head[:32] = 30 * torch.eye(32, 64)

    def data(seed, rows, length=32):
        g = torch.Generator().manual_seed(seed)
        ids = torch.stack([torch.randperm(32, generator=g) for _ in range(rows)])
        onehot = torch.zeros(rows, length, 64)
        for t in range(length - feature_shift):
            onehot[torch.arange(rows), t, ids[:, t + feature_shift]] = 4.0
        mask = torch.ones_like(ids)
        mask[:, 0] = 0
        batch = {"input_ids": ids, "loss_mask": mask, "attention_mask": torch.ones_like(ids)}
        return Features(final_hidden=torch.zeros(rows, length, 64), layers={0: onehot}), batch

    feats, batch = data(1, 32)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(steps):
        loss, _ = m.loss(feats, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        _, counters = m.loss(*data(2, 8))
    return counters["top1/0"]


def test_alignment_block_position_one_reads_the_context_before_the_anchor():
    """Context at t encodes x_{t+2}: the block anchored at a sees t = a - 1, which names its
    label x_{a+1}, so the fitted draft reaches ~100% (98.75%). Shifted by one (x_{t+1}), the label sits
    at t = a, which the block must not see (strictly before the anchor): chance level. A
    context rule of <= a, or labels off by one, would swap the two results."""
    target = load_target(compose(["model=tiny-llama"]).model)
    hits, count = _fit_block2(target, 2)
    assert float(count) == 8 * 30  # every a in 1..30 of 8 rows of 32: exact denominators
    assert float(hits) / float(count) > 0.95
    hits, count = _fit_block2(target, 1)
    assert float(count) == 8 * 30
    assert float(hits) / float(count) < 0.2  # chance is 1/31 (x_a itself is never the label)


# ------------------------------------------------------------------------------ decoding

def greedy_reference(target, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        logits = target.model(input_ids=torch.tensor([ids])).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


class Oracle:
    """Proposes the greedy continuation (so that verify steps accept whole blocks and the
    proposer's accept appends many positions) while checking, at every step, that the
    DFlash proposer's block equals the training forward's argmax for the same anchor."""

    def __init__(self, m, target, spec, greedy, prompt):
        self.p, self.m, self.target, self.spec = m.make_proposer("block"), m, target, spec
        self.full, self.checked = list(prompt) + greedy, 0

    def start(self, ids, out):
        self.p.start(ids, out)

    def propose(self, ids):
        drafted = self.p.propose(ids)
        x = torch.tensor([ids])
        feats = self.target.features(x, torch.ones_like(x), self.spec)
        ctx = self.m.context([feats.layers[i] for i in self.m.target_layers])
        anchors = torch.tensor([[len(ids) - 1]])
        hidden = self.m.block_hidden(self.m.context_kv(ctx), self.m.block_inputs(x, anchors),
                                     anchors, ctx.dtype)
        trained = (hidden[0, 0, 1:] @ self.m.target_lm_head.T).argmax(-1).tolist()
        assert drafted == trained, len(ids)
        self.checked += 1
        n = len(ids)
        return self.full[n: n + len(drafted)]

    def accept(self, ids, n_new, out):
        self.p.accept(ids, n_new, out)


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-qwen2"])
def test_block_proposer_is_exact_and_equals_the_training_forward(model_name):
    from specbench.decoding import speculative_generate

    target, cfg, m = make(model_name, num_layers=2, block_size=4)
    m.eval()
    prompt = list(range(40, 60))
    greedy = greedy_reference(target, prompt, 30)
    with torch.no_grad():
        res = speculative_generate(target, m.make_proposer("block"), prompt, 30, set())
    assert res.tokens == greedy
    oracle = Oracle(m, target, m.feature_spec(cfg, target.config), greedy, prompt)
    with torch.no_grad():
        res = speculative_generate(target, oracle, prompt, 30, set())
    assert res.tokens == greedy and oracle.checked >= 5
    assert max(res.accepted) == 3  # whole blocks accepted: multi-position appends covered
    assert m.make_proposer("block").budget == {"block_size": 4, "draft_tokens": 3}
    with pytest.raises(UserError, match="algorithm.num_draft=4 must be in 1..3"):
        m.make_proposer("block", num_draft=4)


def test_num_draft_truncates_the_block():
    from specbench.decoding import VerifyOutput

    target, cfg, m = make(num_layers=1, block_size=5)
    m.eval()
    with torch.no_grad():
        out = target.model(input_ids=torch.arange(50, 61)[None], output_hidden_states=True)
    ids = list(range(50, 61)) + [int(out.logits[0, -1].argmax())]
    full, short = m.make_proposer("block"), m.make_proposer("block", num_draft=2)
    for p in (full, short):
        p.start(ids, VerifyOutput(out.hidden_states))
    a, b = full.propose(ids), short.propose(ids)
    assert len(a) == 4 and b == a[:2]


# ------------------------------------------------------------------------------ config

def test_config_composes_and_describes():
    cfg = compose(["algorithm=dflash"])
    assert OmegaConf.get_type(cfg.algorithm) is DFlashConfig
    assert cfg.algorithm.block_size == 16 and cfg.algorithm.num_layers == 5
    assert DFlashConfig.horizon({"block_size": 8}) == "block 8"
    validate(compose(["algorithm=dflash", "algorithm.labels=dataset",
                      "algorithm.loss_gamma=null"]))


@pytest.mark.parametrize("override, fragment", [
    ("algorithm.block_size=1", "algorithm.block_size=1 must be at least 2"),
    ("algorithm.num_layers=0", "algorithm.num_layers=0 must be at least 1"),
    ("algorithm.num_anchors=0", "algorithm.num_anchors=0 must be at least 1"),
    ("algorithm.loss_gamma=0", "algorithm.loss_gamma=0.0 must be > 0"),
    ("algorithm.mask_token_id=-1", "algorithm.mask_token_id=-1 must be at least 0"),
    ("algorithm.mask_token_id=320", "algorithm.mask_token_id=320 must be below the target's "
                                    "vocabulary of 320"),
    ("algorithm.num_draft=16", "algorithm.num_draft=16 exceeds the block_size - 1 = 15"),
    ("algorithm.target_layers=[2,1]", "algorithm.target_layers=\\[2, 1\\] must name at least"),
    ("algorithm.target_layers=[]", "algorithm.target_layers=\\[\\] must name at least"),
    ("algorithm.target_layers=[0,3]", "must name layers 0..2 of the target's 4"),
    ("algorithm.num_key_value_heads=3", "algorithm.num_key_value_heads=3 must divide"),
    ("algorithm.labels=soft", "labels"),
])
def test_bad_settings_fail_at_compose_time(override, fragment):
    from specbench.config import compose_checked

    with pytest.raises(UserError, match=fragment):
        compose_checked(["model=tiny-llama", "algorithm=dflash", override])


@pytest.mark.parametrize("layers, draft, expected", [
    (30, 5, [1, 8, 14, 20, 27]), (36, 5, [1, 9, 17, 25, 33]), (24, 5, [1, 6, 11, 16, 21]),
    (30, 1, [15]), (4, 5, [0, 1, 2]), (4, 2, [0, 2]), (7, 5, [0, 1, 2, 3, 5]), (2, 3, [0])])
def test_target_layer_rule(layers, draft, expected):
    """z-lab's rule where it gives sorted unique ids below the last layer (SmolLM2, Qwen3-8B,
    Qwen2.5-0.5B as in SpecForge's shipped config); else min(draft, n-1) ids spread over
    0..n-2 (the 4-layer test targets; 7 layers, where rounding repeats 2)."""
    assert build_target_layer_ids(layers, draft) == expected
    with pytest.raises(UserError, match="at least 2 decoder layers"):
        build_target_layer_ids(1, 1)


def test_mask_token_rule():
    from specbench.algorithms.dflash import resolve_mask_token_id

    class Tok:
        mask_token_id, pad_token_id, eos_token_id = None, 7, 9

        def __len__(self):
            return 100

    tok = Tok()
    assert resolve_mask_token_id(cfg_of(), tok, 128) == 100  # the first unused row
    assert resolve_mask_token_id(cfg_of(), tok, 100) == 7  # no unused row: pad
    tok.pad_token_id = None
    assert resolve_mask_token_id(cfg_of(), tok, 100) == 9
    tok.mask_token_id = 3
    assert resolve_mask_token_id(cfg_of(), tok, 100) == 3
    assert resolve_mask_token_id(cfg_of(mask_token_id=5), tok, 100) == 5
    with pytest.raises(UserError, match="algorithm.mask_token_id=100 must be below"):
        resolve_mask_token_id(cfg_of(mask_token_id=100), tok, 100)
    with pytest.raises(UserError, match="algorithm.mask_token_id=400"):
        DFlash.check_decode_settings(cfg_of(mask_token_id=400), 320)
    target, _, m = make()
    assert m.mask_token_id == len(target.tokenizer) == 263  # tiny: 263 tokens, 320 rows
    assert m.describe()["mask_token_id"] == 263


# ------------------------------------------------------------------------ FLOPs, state

def test_flops_counter_formula():
    target, cfg, m = make(num_layers=2, block_size=4, target_layers=[0, 2])
    m.eval()
    batch = _batch()
    feats = target.features(batch["input_ids"], batch["attention_mask"],
                            m.feature_spec(cfg, target.config))
    _, counters = m.loss(feats, batch)
    anchors, _ = m.sample_anchors(batch["loss_mask"])
    h, d, nh, nkv, inter, v = 64, 16, 4, 2, 128, 320
    mask = batch["loss_mask"].bool()
    b, length = mask.shape
    trained = sum(int(counters[f"top1/{k}"][1]) for k in range(3))
    per_token = h * d * (nh + 2 * nkv) + nh * d * h + 3 * h * inter
    ctx = b * length * (2 * h * h + 2 * 2 * h * nkv * d)
    blocks = 0
    for a in anchors.flatten().tolist():
        blocks += 2 * 4 * (per_token + 2 * nh * d * (a + 4))
    needed = int(mask[:, 1:].sum())
    expected = 6 * (ctx + blocks) + trained * 4 * h * v + needed * 2 * h * v
    num, den = counters["draft_flops"]
    assert float(num) == pytest.approx(expected, rel=1e-9)
    assert float(den) == b * length


def test_trainable_state_names_leave_the_target_tensors_out():
    _, _, m = make(num_layers=2)
    names = set(m.trainable_state_dict())
    layer = {"input_layernorm", "post_attention_layernorm", "self_attn.q_proj",
             "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
             "self_attn.k_norm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    expected = {"fc.weight", "hidden_norm.weight", "norm.weight"} | {
        f"layers.{i}.{p}.weight" for i in range(2) for p in layer}
    assert names == expected
    sd = m.trainable_state_dict()
    assert sd["fc.weight"].shape == (64, 2 * 64)  # tiny target, 2 draft layers: [0, 2] fused
    assert sd["layers.0.self_attn.q_norm.weight"].shape == (16,)
