"""EAGLE-3: features, derived configs, draft vocab, and parity of the TTT loop with a
deliberately simple reference (explicit loops, one full boolean mask over all steps' keys)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from specbench.algorithms.draft_vocab import build_draft_vocab, select_draft_ids
from specbench.algorithms.eagle3 import Eagle3, Eagle3Config, draft_config
from specbench.config import compose
from specbench.data.tokenization import TokenizedRow
from specbench.errors import UserError
from specbench.target import Features, config_from_arch, load_target


def cfg_of(**kw):
    return OmegaConf.structured(Eagle3Config(**kw))


# ----------------------------------------------------------------------------- derived configs

@pytest.mark.parametrize("model, expected", [
    ("llama3-8b", dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=14336, draft_vocab_size=32000, rope_theta=500000.0,
                       aux=[1, 15, 28])),
    ("qwen2.5-7b", dict(hidden_size=3584, num_attention_heads=28, num_key_value_heads=4,
                        intermediate_size=18944, draft_vocab_size=16000, rope_theta=1e6,
                        aux=[1, 13, 24])),
])
def test_derived_config_matches_published_drafts(model, expected):
    target = config_from_arch(compose([f"model={model}"]).model.arch)
    c = draft_config(cfg_of(), target)
    for k in ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
              "draft_vocab_size"):
        assert getattr(c, k) == expected[k], k
    assert c.rope_parameters["rope_theta"] == expected["rope_theta"]
    assert c.architectures == ["LlamaForCausalLMEagle3"] and c.num_hidden_layers == 1
    assert c.target_hidden_size == expected["hidden_size"] and c.head_dim == 128
    assert c.eagle_config["eagle_aux_hidden_state_layer_ids"] == expected["aux"]
    assert c.eagle_aux_hidden_state_layer_ids == [i + 1 for i in expected["aux"]]
    # the whole draft builds on the meta device with the published shapes
    with torch.device("meta"):
        v = target.vocab_size
        d = Eagle3(cfg_of(), target, torch.empty(v, c.hidden_size), torch.empty(v, c.hidden_size),
                   torch.arange(c.draft_vocab_size))
    shapes = {k: tuple(t.shape) for k, t in d.state_dict().items()}
    h = c.hidden_size
    assert shapes["fc.weight"] == (h, 3 * h)
    assert shapes["midlayer.self_attn.q_proj.weight"] == (c.num_attention_heads * 128, 2 * h)
    assert shapes["midlayer.self_attn.k_proj.weight"] == (c.num_key_value_heads * 128, 2 * h)
    assert shapes["midlayer.mlp.gate_proj.weight"] == (c.intermediate_size, h)
    assert shapes["lm_head.weight"] == (c.draft_vocab_size, h)
    assert shapes["d2t"] == (c.draft_vocab_size,) and shapes["t2d"] == (v,)
    assert not any("embed" in k for k in shapes)


def test_overrides_apply():
    target = config_from_arch(compose(["model=llama3-8b"]).model.arch)
    c = draft_config(cfg_of(intermediate_size=1024, num_key_value_heads=4, draft_vocab_size=100,
                            aux_layers=[2, 3, 4]), target)
    assert (c.intermediate_size, c.num_key_value_heads, c.draft_vocab_size) == (1024, 4, 100)
    assert c.eagle_config["eagle_aux_hidden_state_layer_ids"] == [2, 3, 4]


# ------------------------------------------------------------------------------- draft vocab

def test_draft_vocab_counts_assistant_tokens_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path))
    rows = [TokenizedRow([5, 5, 5, 7, 7, 9, 3], [0, 0, 1, 1, 1, 1, 0]),
            TokenizedRow([9, 9, 2], [1, 1, 1])]
    v = build_draft_vocab(rows, vocab_size=12, n=3, key_parts={"t": 1})
    # assistant counts: 9 x3, 7 x2, 5 x1, 2 x1 -> top 3 = {9, 7, 2} (tie 5/2 -> smaller id 2)
    assert v.draft_ids.tolist() == [2, 7, 9]
    assert v.d2t.tolist() == [2, 6, 7] and v.d2t.dtype == torch.int64
    assert (torch.arange(3) + v.d2t).tolist() == [2, 7, 9]
    assert v.t2d(12).nonzero().flatten().tolist() == [2, 7, 9] and v.t2d(12).dtype == torch.bool
    assert v.coverage == pytest.approx(6 / 7)
    cached = list((tmp_path / "draft_vocab").glob("*.safetensors"))
    assert len(cached) == 1
    again = build_draft_vocab([], vocab_size=12, n=3, key_parts={"t": 1})  # served from cache
    assert again.draft_ids.tolist() == [2, 7, 9]
    # fewer distinct tokens than N: filled with unseen ids, smallest first
    assert select_draft_ids(torch.tensor([0, 0, 4, 0, 1]), 4).tolist() == [0, 1, 2, 4]


# ------------------------------------------------------------------------- the reference

def ref_rms(norm, x):
    return norm.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))


def ref_rope(x, pos, head_dim, theta):
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = pos[:, None].float() * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def reference_ttt(m: Eagle3, aux, ids, theta):
    """One TTT unroll written from the definition: every step's keys concatenated, and one
    boolean mask [L, (k+1)L] built element by element."""
    c = m.draft_cfg
    layer = m.midlayer
    b, length = ids.shape
    nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    hidden = torch.cat(aux, -1) @ m.fc.weight.T
    keys, values, outs = [], [], []
    for k in range(m.ttt_length):
        tok = torch.zeros_like(ids)
        for t in range(length):
            if t + 1 + k < length:
                tok[:, t] = ids[:, t + 1 + k]
        emb = m.embed_weight[tok]
        x = torch.cat([ref_rms(layer.input_layernorm, emb), ref_rms(layer.hidden_norm, hidden)], -1)
        att = layer.self_attn
        q = (x @ att.q_proj.weight.T).view(b, length, nh, hd)
        kk = (x @ att.k_proj.weight.T).view(b, length, nkv, hd)
        vv = (x @ att.v_proj.weight.T).view(b, length, nkv, hd)
        pos = torch.arange(length) + k
        q, kk = ref_rope(q.transpose(1, 2), pos, hd, theta), ref_rope(kk.transpose(1, 2), pos, hd, theta)
        keys.append(kk)
        values.append(vv.transpose(1, 2))
        kall = torch.cat(keys, 2).repeat_interleave(nh // nkv, 1)
        vall = torch.cat(values, 2).repeat_interleave(nh // nkv, 1)
        allowed = torch.zeros(length, (k + 1) * length, dtype=torch.bool)
        for qi in range(length):
            for step in range(k + 1):
                for pi in range(length):
                    if (step == 0 and pi <= qi) or (step > 0 and pi == qi):
                        allowed[qi, step * length + pi] = True
        scores = q @ kall.transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(~allowed, float("-inf"))
        attn = (torch.softmax(scores, -1) @ vall).transpose(1, 2).reshape(b, length, nh * hd)
        h = hidden + attn @ att.o_proj.weight.T
        mlp = layer.mlp
        z = ref_rms(layer.post_attention_layernorm, h)
        h = h + (F.silu(z @ mlp.gate_proj.weight.T) * (z @ mlp.up_proj.weight.T)) @ mlp.down_proj.weight.T
        outs.append(h)
        hidden = h
    return outs


def reference_loss(m: Eagle3, outs, final_hidden, ids, mask):
    draft_ids = torch.arange(m.d2t.numel()) + m.d2t
    total, accs = 0.0, []
    b, length = ids.shape
    for k, h in enumerate(outs):
        terms, hits, labels = [], 0, 0
        for bi in range(b):
            for t in range(length):
                p = t + 1 + k  # target logits at t+1+k predict x_{t+2+k}
                if t + 2 + k >= length or not mask[bi, t + 2 + k]:
                    continue
                labels += 1  # SpecForge's accuracy denominator: every label position
                full = m.target_lm_head @ final_hidden[bi, p]
                if not m.t2d[full.argmax()]:
                    continue  # not trained, and a miss: the draft cannot propose that token
                target = torch.softmax(full[draft_ids], -1)
                logits = m.lm_head.weight @ ref_rms(m.norm, h[bi, t])
                terms.append(-(target * torch.log_softmax(logits, -1)).sum())
                hits += int(logits.argmax() == target.argmax())
        total = total + m.decay ** k * torch.stack(terms).mean()
        accs.append(hits / labels)
    return total, accs


def _setup(model_name, ttt=3, attention="diagonal"):
    target = load_target(compose([f"model={model_name}"]).model)
    n = target.config.num_hidden_layers
    cfg = cfg_of(ttt_length=ttt, attention=attention, draft_vocab_size=160, aux_layers=[0, 1, n - 2])
    draft_ids = torch.arange(0, 320, 2)  # every other token: some argmaxes fall outside
    torch.manual_seed(0)
    m = Eagle3(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight, draft_ids)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 256, (2, 11), generator=g)
    attn = torch.ones_like(ids)
    mask = (torch.rand(2, 11, generator=g) > 0.25).long()
    feats = target.features(ids, attn, m.feature_spec(cfg, target.config))
    return target, m, feats, {"input_ids": ids, "attention_mask": attn, "loss_mask": mask}


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-qwen2"])
def test_ttt_matches_reference(model_name):
    target, m, feats, batch = _setup(model_name)
    theta = target.config.rope_parameters["rope_theta"]
    aux = [feats.layers[i] for i in m.aux_layers]
    outs = m.ttt_forward(aux, batch["input_ids"])
    ref = reference_ttt(m, aux, batch["input_ids"], theta)
    for a, r in zip(outs, ref):
        torch.testing.assert_close(m.draft_logits(a), ref_rms(m.norm, r) @ m.lm_head.weight.T,
                                   rtol=1e-5, atol=1e-5)
    loss, counters = m.loss(feats, batch)
    ref_loss, ref_accs = reference_loss(m, ref, feats.final_hidden, batch["input_ids"],
                                        batch["loss_mask"])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for k, acc in enumerate(ref_accs):
        num, den = counters[f"top1/{k}"]
        assert float(num) / float(den) == pytest.approx(acc)
        # the denominator is every label position; the old rule counted only those whose
        # target token lies in the draft vocabulary (this setup has some that do not)
        assert float(den) == float(batch["loss_mask"][:, 2 + k:].sum())
    params = [p for p in m.parameters() if p.requires_grad]
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert "fc.weight" in names and "lm_head.weight" in names and len(names) == 13
    for name, a, r in zip(names, torch.autograd.grad(loss, params),
                          torch.autograd.grad(ref_loss, params)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5, msg=name)


def test_flex_attention_equals_diagonal():
    pytest.importorskip("torch.nn.attention.flex_attention")
    target, m, feats, batch = _setup("tiny-llama", ttt=3)
    aux = [feats.layers[i] for i in m.aux_layers]
    with torch.no_grad():  # PyTorch's CPU flex_attention has no backward; CUDA runs it fully
        dense = m.ttt_forward(aux, batch["input_ids"])
        m.attention = "flex"
        flex = m.ttt_forward(aux, batch["input_ids"])
    for a, b in zip(dense, flex):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="algorithm.attention=flex"):
        m.ttt_forward(aux, batch["input_ids"])


def test_step0_alignment_features_encode_next_token():
    """Features at t encode x_{t+2} (the token step 0 must predict there). After a short fit the
    step-0 draft, mapped through d2t, names x_{t+2}: an off-by-one in ids, targets or masks would
    leave it near chance."""
    torch.manual_seed(0)
    target = load_target(compose(["model=tiny-llama"]).model)
    v = 64
    cfg = cfg_of(ttt_length=1, draft_vocab_size=v, aux_layers=[0, 1, 2])
    m = Eagle3(cfg, target.config, target.embed_tokens.weight, torch.zeros(320, 64),
               torch.arange(v))
    ids = torch.stack([torch.randperm(v) for _ in range(8)])
    b, length = ids.shape
    onehot = F.one_hot(shift(ids, 2), 64).float() * 4  # hidden size is 64
    # a "perfect" target: its logits at p put all mass on x_{p+1}
    final = torch.zeros(b, length, 64)
    final[:, :-1] = F.one_hot(ids[:, 1:], 64).float()
    m.target_lm_head = torch.zeros(320, 64)
    m.target_lm_head[:64] = 30 * torch.eye(64)
    feats = Features(final_hidden=final, layers={0: onehot, 1: onehot, 2: onehot})
    batch = {"input_ids": ids, "loss_mask": torch.ones_like(ids)}
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    for _ in range(150):
        loss, _ = m.loss(feats, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = m.draft_logits(m.ttt_forward([onehot] * 3, ids, steps=1)[0]).argmax(-1)
    pred_target_ids = pred + m.d2t[pred]
    acc = (pred_target_ids[:, : length - 2] == ids[:, 2:]).float().mean()
    assert acc > 0.97, float(acc)


def shift(x, n):
    out = torch.zeros_like(x)
    out[:, : x.shape[1] - n] = x[:, n:]
    return out


def test_trains_end_to_end_on_tiny_target(tmp_path, conv_file):
    from specbench.trainer import train

    from .conftest import tiny_overrides

    over = tiny_overrides(conv_file, **{"algorithm": "eagle3", "algorithm.ttt_length": 3,
                                        "algorithm.draft_vocab_size": 64, "trainer.max_steps": 4})
    s = train(compose(over), tmp_path / "run")
    assert s["status"] == "completed" and len(s["train"]["top1"]) == 3
    d = s["algorithm_details"]
    assert d["draft_vocab_size"] == 64 and 0 < d["draft_vocab_coverage"] <= 1
    assert d["aux_layers"] == [0, 1, 2] and d["attention"] == "diagonal"
    # same controlled settings as a Medusa run: same fingerprint
    medusa = compose(tiny_overrides(conv_file, **{"trainer.max_steps": 4}))
    from specbench import fairness

    assert fairness.fingerprint(medusa, s["dataset"]["sha256"]) == s["fingerprint"]


def test_a_draft_vocabulary_with_nothing_to_train_is_refused_or_warned(tmp_path, conv_file):
    """Issue 10: a tiny draft vocabulary left batches with no pair to train (the target's
    greedy token never in the draft vocabulary): a traceback ('element 0 of tensors does not
    require grad') at step 1. Now: nothing to train in the first batch is refused, naming the
    setting; a later empty batch is a warning and adds zero gradients."""
    from specbench.trainer import train

    from .conftest import tiny_overrides

    def over(n):
        return tiny_overrides(conv_file, **{"algorithm": "eagle3", "trainer.max_steps": 2,
                                            "algorithm.draft_vocab_size": n,
                                            "decode.enabled": "false"})

    with pytest.raises(UserError, match=r"algorithm.draft_vocab_size=1 is too small to train"):
        train(compose(over(1)), tmp_path / "one")
    with pytest.warns(UserWarning, match=r"algorithm.draft_vocab_size=8: a training batch had "
                                         "no pair"):
        s = train(compose(over(8)), tmp_path / "eight")
    assert s["status"] == "completed"


def test_a_later_batch_without_pairs_gives_a_zero_loss_that_backpropagates():
    target, m, feats, batch = _setup("tiny-llama", ttt=2)
    m._trained_pairs = True  # an earlier batch trained: one unlucky batch must not stop a run
    m.t2d.zero_()  # no target argmax in the draft vocabulary
    with pytest.warns(UserWarning, match="no pair to train on"):
        loss, counters = m.loss(feats, batch)
    assert float(loss) == 0.0 and loss.requires_grad
    hits, labels = counters["top1/0"]  # every label position a miss, none left out
    assert float(hits) == 0.0 and float(labels) == float(batch["loss_mask"][:, 2:].sum())
    loss.backward()
    assert all(float(p.grad.abs().sum()) == 0.0 for p in m.parameters() if p.requires_grad)
    m._trained_pairs = False  # the first batch: refused
    with pytest.raises(UserError, match="algorithm.draft_vocab_size"):
        m.loss(feats, batch)


# ----------------------------------------------------------------- aux layers (issue 11)

@pytest.mark.parametrize("n, expected", [(4, [0, 1, 2]), (5, [0, 1, 3]), (6, [0, 2, 4]),
                                         (7, [1, 2, 3]), (30, [1, 14, 26]), (32, [1, 15, 28])])
def test_default_aux_layers_are_sorted_unique_and_below_the_last_layer(n, expected):
    """Issue 11: the default [1, n//2-1, n-4] gave [1, 1, 0] on the 4-layer tiny models
    (vLLM sorts and de-duplicates the ids: 2 features where fc expects 3). It is kept
    wherever it is valid (SmolLM2's 30 layers, Llama-3's 32)."""
    from specbench.algorithms.eagle3 import default_aux_layers

    assert default_aux_layers(n) == expected
    with pytest.raises(UserError, match="at least 4 decoder layers.*has 3"):
        default_aux_layers(3)


@pytest.mark.parametrize("layers, fragment", [
    ([2, 1, 0], "sorted and unique"), ([1, 1, 2], "sorted and unique"),
    ([0, 1], "must name 3 decoder layers"), ([-1, 0, 1], "sorted and unique")])
def test_aux_layers_config_rule(layers, fragment):
    with pytest.raises(ValueError, match=f"algorithm.aux_layers=.*{fragment}"):
        Eagle3Config(aux_layers=layers)


def test_aux_layers_must_be_below_the_last_layer():
    """Issue 11: the last layer's output is read pre-norm by the training hook but as
    hidden_states[n] (post-norm) in decoding, and SGLang can never capture it."""
    from specbench.algorithms.eagle3 import aux_layers_of

    target = config_from_arch(compose(["model=tiny-llama"]).model.arch)  # 4 layers
    assert aux_layers_of(cfg_of(aux_layers=[0, 1, 2]), target) == [0, 1, 2]
    with pytest.raises(UserError, match=r"algorithm.aux_layers=\[0, 1, 3\] must name layers "
                                        r"of the target, 0..2 .*\[0, 1, 2\]"):
        aux_layers_of(cfg_of(aux_layers=[0, 1, 3]), target)
    from specbench.config import validate

    with pytest.raises(UserError, match="last layer"):
        validate(compose(["model=tiny-llama", "algorithm=eagle3", "algorithm.aux_layers=[0,1,3]"]))
    small = compose(["model=tiny-llama"]).model.arch
    small.num_hidden_layers = 3
    with pytest.raises(UserError, match="at least 4 decoder layers"):
        aux_layers_of(cfg_of(), config_from_arch(small))


def test_vllm_layer_ids_are_one_above_and_inside_the_target():
    """vLLM 0.33 captures the *input* of its layer ids (gpu_model_runner's
    eagle_aux_hidden_state_layer_ids, llama.py's _maybe_add_hidden_state(idx + 1)): id i+1 for
    specbench's layer i, all in 1..n-1 under the new rule."""
    for model in ("tiny-llama", "llama3-8b", "smollm2-135m"):
        target = config_from_arch(compose([f"model={model}"]).model.arch)
        c = draft_config(cfg_of(), target)
        ours = c.eagle_config["eagle_aux_hidden_state_layer_ids"]
        assert c.eagle_aux_hidden_state_layer_ids == [i + 1 for i in ours]
        assert all(1 <= j <= target.num_hidden_layers - 1 for j in
                   c.eagle_aux_hidden_state_layer_ids)


def test_decoding_reads_the_features_training_reads():
    """The features the decoder fuses (proposers.py, VerifyOutput.layer_output) equal those
    the training hook captures (target.features), for the default layers of tiny-llama."""
    from specbench.decoding import VerifyOutput

    target = load_target(compose(["model=tiny-llama"]).model)
    m = Eagle3(cfg_of(), target.config, target.embed_tokens.weight, target.lm_head.weight,
               torch.arange(320))
    ids = torch.arange(40, 53)[None]
    feats = target.features(ids, torch.ones_like(ids), m.feature_spec(cfg_of(), target.config))
    with torch.no_grad():
        out = target.model(input_ids=ids, output_hidden_states=True)
    decoded = m.make_proposer()._features(VerifyOutput(out.hidden_states))
    trained = m.fc(torch.cat([feats.layers[i] for i in m.aux_layers], dim=-1))
    assert m.aux_layers == [0, 1, 2]
    assert torch.equal(decoded, trained)


# ------------------------------------------------------------- EAGLE-2 tree (issue 11)

def test_tree_settings_follow_the_reference():
    """SafeAILab/EAGLE (eagle/model/cnets.py topK_genrate, evaluation/gen_ea_answer_*.py):
    --top-k 10 --depth 5 --total-token 60; depth + 1 levels, total_token with the root."""
    from specbench.algorithms.eagle3.config import tree_settings

    t = tree_settings(cfg_of())
    assert {k: t[k] for k in ("top_k", "depth", "total_token")} == {
        "top_k": 10, "depth": 5, "total_token": 60}
    target = load_target(compose(["model=tiny-llama"]).model)
    m = Eagle3(cfg_of(), target.config, target.embed_tokens.weight, target.lm_head.weight,
               torch.arange(320))
    tree = m.make_proposer("tree")
    assert tree.budget == {"top_k": 10, "depth": 5, "total_token": 60, "levels": 6,
                           "max_nodes": 59}
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        out = target.model(input_ids=torch.arange(50, 61)[None], output_hidden_states=True)
    from specbench.decoding import VerifyOutput

    ids = list(range(50, 61)) + [int(out.logits[0, -1].argmax())]
    for top_k, depth, total in ((10, 5, 60), (2, 3, 5), (3, 0, 60)):
        p = m.make_proposer("tree", top_k=top_k, depth=depth, total_token=total)
        p.start(ids, VerifyOutput(out.hidden_states))
        t = p.propose(ids)
        assert len(t.tokens) == p.budget["max_nodes"] == min(total - 1, top_k + depth * top_k ** 2)
        levels = []
        for i in range(len(t.tokens)):
            d, j = 1, t.parents[i]
            while j >= 0:
                d, j = d + 1, t.parents[j]
            levels.append(d)
        assert max(levels) <= depth + 1
    assert max(levels) == 1  # depth 0: the root's children only


def test_old_runs_tree_settings_read_with_their_old_meaning(tmp_path):
    """A run recorded before the rename carries tree_top_k / tree_depth (drafted levels) /
    tree_total_tokens (nodes without the root): read_run_config still reads it, and its tree
    is the one it was evaluated with (depth = levels - 1, total_token = nodes + 1)."""
    import json

    from specbench.algorithms.eagle3.config import tree_settings
    from specbench.checkpoint import read_run_config

    cfg = compose(["model=tiny-llama", "algorithm=eagle3"])
    data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key in ("top_k", "depth", "total_token"):
        data["algorithm"].pop(key)
    data["algorithm"].update(tree_top_k=8, tree_depth=5, tree_total_tokens=32)
    (tmp_path / "config.json").write_text(json.dumps(data))
    old = read_run_config(tmp_path)
    t = tree_settings(old.algorithm)
    assert (t["top_k"], t["depth"], t["total_token"]) == (8, 4, 33)
    assert t["source"] == {"top_k": "tree_top_k", "depth": "tree_depth",
                           "total_token": "tree_total_tokens"}
    old.algorithm.depth = 2  # a new-name override of a recorded run wins
    assert tree_settings(old.algorithm)["depth"] == 2
    from specbench.config import validate

    with pytest.raises(UserError, match="algorithm.depth=-1 must be at least 0"):
        validate(compose(["algorithm=eagle3", "algorithm.depth=-1"]))
    with pytest.raises(UserError, match="algorithm.total_token=1 must be at least 2"):
        validate(compose(["algorithm=eagle3", "algorithm.total_token=1"]))
