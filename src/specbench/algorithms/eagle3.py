"""EAGLE-3 (Li et al. 2025): one draft decoder layer on fused multi-layer target features,
trained with training-time test (TTT).

Alignment, for tokens x_0 .. x_{L-1}:
- features: the outputs of three target decoder layers (default [1, n//2-1, n-4], the inputs of
  [2, n//2, n-3]), concatenated (3H) and projected by ``fc`` to H: f_t;
- step 0, position t: draft input = (f_t, embedding of x_{t+1}); it is trained against the
  target's distribution for x_{t+2} (the target logits at t+1), restricted to the draft vocab;
- step k (k = 0..ttt_length-1): the hidden input is the draft's own output at step k-1 (same
  position), the token input x_{t+1+k}, the target the logits at t+1+k, the RoPE position t+k;
- a pair (t, k) is trained when x_{t+2+k} is an assistant token (the same label-position rule
  as Medusa) and the target's argmax at t+1+k lies in the draft vocabulary;
- attention: a step-k query at t sees the step-0 keys at positions <= t and the step-j keys
  (1 <= j <= k) at position t only.

Parameter names follow the SGLang/vLLM ``LlamaForCausalLMEagle3`` checkpoint layout (``fc``,
``midlayer.*``, ``norm``, ``lm_head``, ``d2t``, ``t2d``); the token embedding is the target's,
frozen and not saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.draft_vocab import build_draft_vocab
from specbench.config import AlgorithmConfig, at_least, enum_value, positive
from specbench.errors import UserError
from specbench.target import FeatureSpec, rope_theta_of

# Default draft vocabulary by target vocabulary size: SpecForge's published drafts, and
# 8192 for SmolLM2's 49152 tokens (it covers every assistant token of the embedded set, 4,684
# distinct ids, with headroom for unseen prompts; see docs/eagle3.md). Others: min(vocab, 32000).
DEFAULT_DRAFT_VOCAB = {128256: 32000, 152064: 16000, 49152: 8192}


class Attention(str, Enum):
    auto = "auto"  # flex on CUDA, diagonal elsewhere
    diagonal = "diagonal"  # causal scores over step 0 + one score per earlier step
    flex = "flex"  # torch flex_attention with a block mask over the concatenated keys


@dataclass
class Eagle3Config(AlgorithmConfig):
    name: str = "eagle3"
    aux_layers: list[int] | None = None  # decoder-layer outputs; None: [1, n//2-1, n-4]
    ttt_length: int = 7
    step_decay: float = 0.8
    draft_vocab_size: int | None = None  # None: DEFAULT_DRAFT_VOCAB or min(vocab, 32000)
    attention: Attention = Attention.auto
    # Draft-layer overrides; None copies the target's value.
    intermediate_size: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    # Decoding: the EAGLE-2 dynamic tree (expand tree_top_k per depth, tree_depth deep, keep
    # the best tree_total_tokens by cumulative log-probability)
    tree_top_k: int = 8
    tree_depth: int = 5
    tree_total_tokens: int = 32

    def __post_init__(self):
        a = "algorithm"
        for key in ("ttt_length", "draft_vocab_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "tree_top_k", "tree_depth", "tree_total_tokens"):
            at_least(a, key, getattr(self, key), 1,
                     "" if key in ("ttt_length",) or key.startswith("tree_")
                     else "leave it unset (null) for the default")
        positive(a, "step_decay", self.step_decay, "step k of training-time test is weighted "
                 "step_decay^k")
        if self.aux_layers is not None and (len(self.aux_layers) != 3
                                            or min(self.aux_layers) < 0):
            raise ValueError(f"algorithm.aux_layers={list(self.aux_layers)} must name 3 decoder "
                             "layers of the target (0-based); leave it unset (null) for "
                             "[1, n//2-1, n-4].")

    def check_target(self, model) -> None:
        arch = model.arch
        if self.aux_layers is not None and max(self.aux_layers) >= arch.num_hidden_layers:
            raise ValueError(f"algorithm.aux_layers={list(self.aux_layers)} must name layers of "
                             f"the target, 0..{arch.num_hidden_layers - 1} "
                             f"(model.arch.num_hidden_layers={arch.num_hidden_layers}).")
        if self.draft_vocab_size is not None and self.draft_vocab_size > arch.vocab_size:
            raise ValueError(f"algorithm.draft_vocab_size={self.draft_vocab_size} must be at "
                             f"most the target's vocabulary, model.arch.vocab_size="
                             f"{arch.vocab_size}.")
        heads = self.num_attention_heads or arch.num_attention_heads
        kv = self.num_key_value_heads or arch.num_key_value_heads
        if self.num_attention_heads is not None and arch.hidden_size % heads:
            raise ValueError(f"algorithm.num_attention_heads={heads} must divide "
                             f"model.arch.hidden_size={arch.hidden_size}; leave it unset (null) "
                             f"to copy the target's {arch.num_attention_heads}.")
        if heads % kv:
            raise ValueError(f"algorithm.num_key_value_heads={kv} must divide the draft's "
                             f"attention heads, {heads} (algorithm.num_attention_heads, or the "
                             "target's when unset); leave both unset (null) to copy the "
                             "target's.")



def default_aux_layers(num_layers: int) -> list[int]:
    return [1, num_layers // 2 - 1, num_layers - 4]


def aux_layers_of(cfg, target_config) -> list[int]:
    n = target_config.num_hidden_layers
    layers = list(cfg.aux_layers) if cfg.aux_layers is not None else default_aux_layers(n)
    if len(layers) != 3 or not all(0 <= i < n for i in layers):
        raise UserError(f"algorithm.aux_layers={layers} must name 3 decoder layers of the "
                        f"target (0..{n - 1}); the default is {default_aux_layers(n)}.")
    return layers


def draft_config(cfg, target_config, draft_vocab_size: int | None = None):
    """The draft's transformers config, derived from the target's; fields in ``cfg`` override.

    It is also the ``config.json`` of an SGLang/vLLM export."""
    from transformers import LlamaConfig

    h = target_config.hidden_size
    heads = cfg.num_attention_heads or target_config.num_attention_heads
    n_vocab = target_config.vocab_size
    dv = draft_vocab_size or cfg.draft_vocab_size or DEFAULT_DRAFT_VOCAB.get(
        n_vocab, min(n_vocab, 32000))
    if not 0 < dv <= n_vocab:
        raise UserError(f"algorithm.draft_vocab_size={dv} must be in 1..{n_vocab} (the target "
                        "vocabulary size).")
    head_dim = getattr(target_config, "head_dim", None) or h // target_config.num_attention_heads
    rope = {}
    params = getattr(target_config, "rope_parameters", None)
    if isinstance(params, dict):
        rope["rope_parameters"] = dict(params)
    scaling = getattr(target_config, "rope_scaling", None)
    c = LlamaConfig(
        hidden_size=h, intermediate_size=cfg.intermediate_size or target_config.intermediate_size,
        num_attention_heads=heads,
        num_key_value_heads=cfg.num_key_value_heads or target_config.num_key_value_heads,
        head_dim=head_dim, num_hidden_layers=1, vocab_size=n_vocab,
        rms_norm_eps=target_config.rms_norm_eps, hidden_act="silu",
        max_position_embeddings=target_config.max_position_embeddings,
        tie_word_embeddings=False, rope_theta=rope_theta_of(target_config), **rope,
    )
    if scaling is not None and not isinstance(params, dict):
        c.rope_scaling = scaling
    c.architectures = ["LlamaForCausalLMEagle3"]
    c.draft_vocab_size = dv
    c.target_hidden_size = h
    layers = aux_layers_of(cfg, target_config)
    # The two engines read the ids one layer apart: SGLang (nested eagle_config) takes the
    # *output* of layer i, as specbench and SpecForge do; vLLM (top level) captures the *input*
    # of layer i, which is the output of layer i-1.
    c.eagle_config = {"eagle_aux_hidden_state_layer_ids": list(layers),
                      "use_aux_hidden_state": True}
    c.eagle_aux_hidden_state_layer_ids = [i + 1 for i in layers]
    return c


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


class DraftAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (c.num_attention_heads, c.num_key_value_heads,
                                                    c.head_dim)
        self.q_proj = nn.Linear(2 * c.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(2 * c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(2 * c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache: list, backend: str):
        b, length, _ = x.shape
        q = self.q_proj(x).view(b, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, length, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        cache.append((k, v))
        rep = self.heads // self.kv_heads
        keys = [kk.repeat_interleave(rep, dim=1) for kk, _ in cache]
        values = [vv.repeat_interleave(rep, dim=1) for _, vv in cache]
        if backend == "flex":
            out = _flex_ttt_attention(q, keys, values)
        else:
            out = _diagonal_ttt_attention(q, keys, values)
        return self.o_proj(out.transpose(1, 2).reshape(b, length, -1))


def _diagonal_ttt_attention(q, keys, values):
    """Scores [B, h, L, L + k]: causal over step-0 keys, plus one score per later step at the
    query's own position. No [L, L*(k+1)] mask is ever built."""
    length, scale = q.shape[2], 1.0 / math.sqrt(q.shape[-1])
    s0 = (q @ keys[0].transpose(-1, -2)) * scale
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    s0 = s0.masked_fill(~causal, float("-inf"))
    diag = [(q * kj).sum(-1, keepdim=True) * scale for kj in keys[1:]]
    probs = torch.softmax(torch.cat([s0, *diag], dim=-1).float(), dim=-1).to(q.dtype)
    out = probs[..., :length] @ values[0]
    for j, vj in enumerate(values[1:]):
        out = out + probs[..., length + j: length + j + 1] * vj
    return out


def _flex_ttt_attention(q, keys, values):
    from torch.nn.attention.flex_attention import create_block_mask

    length = q.shape[2]

    def mask_mod(b, h, q_idx, kv_idx):
        step, pos = kv_idx // length, kv_idx % length
        return ((step == 0) & (pos <= q_idx)) | ((step > 0) & (pos == q_idx))

    k_all, v_all = torch.cat(keys, dim=2), torch.cat(values, dim=2)
    block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=length,
                                   KV_LEN=k_all.shape[2], device=q.device)
    return _compiled_flex()(q, k_all, v_all, block_mask=block_mask)


_FLEX = {}


def _compiled_flex():
    if "fn" not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX["fn"] = torch.compile(flex_attention)  # shapes go dynamic after a recompile
    return _FLEX["fn"]


class DraftMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DraftLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.hidden_norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = DraftAttention(c)
        self.mlp = DraftMLP(c)

    def forward(self, embeds, hidden, cos, sin, cache, backend):
        x = torch.cat([self.input_layernorm(embeds), self.hidden_norm(hidden)], dim=-1)
        h = hidden + self.self_attn(x, cos, sin, cache, backend)
        return h + self.mlp(self.post_attention_layernorm(h))


def shift_left(x: torch.Tensor, n: int) -> torch.Tensor:
    """x[:, n:] padded with zeros (False) at the end, same shape."""
    if n == 0:
        return x
    out = torch.zeros_like(x)
    if n < x.shape[1]:
        out[:, : x.shape[1] - n] = x[:, n:]
    return out


class Eagle3(nn.Module):
    name = "eagle3"
    config_class = Eagle3Config

    def __init__(self, cfg, target_config, embed_weight: torch.Tensor, target_lm_head: torch.Tensor,
                 draft_ids: torch.Tensor, coverage: float | None = None):
        super().__init__()
        c = draft_config(cfg, target_config, len(draft_ids))
        self.draft_cfg = c
        self.aux_layers = aux_layers_of(cfg, target_config)
        self.ttt_length = int(cfg.ttt_length)
        if self.ttt_length < 1:
            raise UserError(f"algorithm.ttt_length must be >= 1 (got {cfg.ttt_length}).")
        self.tree = {k: int(cfg.get(f"tree_{k}", d)) for k, d in
                     (("top_k", 8), ("depth", 5), ("total_tokens", 32))}
        if min(self.tree.values()) < 1:
            raise UserError(f"algorithm.tree_top_k, tree_depth and tree_total_tokens must be "
                            f">= 1 (got {self.tree}).")
        self.decay = float(cfg.step_decay)
        self.attention = enum_value(cfg.attention)
        self.coverage = coverage
        h = c.hidden_size
        self.fc = nn.Linear(3 * h, h, bias=False)
        self.midlayer = DraftLayer(c)
        self.norm = RMSNorm(h, c.rms_norm_eps)
        self.lm_head = nn.Linear(h, c.draft_vocab_size, bias=False)
        self.register_buffer("d2t", draft_ids - torch.arange(len(draft_ids)))
        self.register_buffer("draft_ids", draft_ids.clone(), persistent=False)
        t2d = torch.zeros(c.vocab_size, dtype=torch.bool)
        t2d[draft_ids] = True
        self.register_buffer("t2d", t2d)
        self.register_buffer("embed_weight", embed_weight.detach(), persistent=False)
        self.register_buffer("target_lm_head", target_lm_head.detach(), persistent=False)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.rotary = LlamaRotaryEmbedding(config=c)

    # ------------------------------------------------------------------ registry interface
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        return FeatureSpec(layers=tuple(aux_layers_of(cfg, target_config)), final_hidden=True)

    @classmethod
    def build(cls, cfg, target, data=None) -> Eagle3:
        """``data``: the ChatDataset whose training rows define the draft vocabulary."""
        c = draft_config(cfg, target.config)
        rows = data.train if data is not None else []
        key = {"model": target.name, "tokenizer": target.tokenizer.name_or_path,
               "tokenizer_size": len(target.tokenizer),
               "dataset": data.key() if data is not None else None}
        vocab = build_draft_vocab(rows, target.config.vocab_size, c.draft_vocab_size, key)
        return cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight,
                   vocab.draft_ids, vocab.coverage)

    @classmethod
    def from_state(cls, cfg, target, state: dict) -> Eagle3:
        """A trained draft from its saved tensors; the draft vocab comes from its d2t."""
        draft_ids = state["d2t"] + torch.arange(state["d2t"].numel())
        m = cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight, draft_ids)
        m.load_trainable_state_dict(state)
        return m

    def describe(self) -> dict:
        return {"draft_vocab_size": int(self.d2t.numel()), "draft_vocab_coverage": self.coverage,
                "aux_layers": self.aux_layers, "attention": self.resolved_attention(),
                "draft_config": {k: getattr(self.draft_cfg, k) for k in (
                    "hidden_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "rms_norm_eps")}}

    def serving_config(self) -> dict:
        """config.json of an SGLang/vLLM export (written next to the checkpoints)."""
        d = self.draft_cfg.to_dict()
        d["rope_theta"] = rope_theta_of(self.draft_cfg)
        d.setdefault("rope_scaling", getattr(self.draft_cfg, "rope_scaling", None))
        return d

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state_dict())

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)

    def _layer_macs(self, context: float) -> float:
        """Multiply-accumulates of the draft layer at one position with ``context`` keys."""
        c = self.draft_cfg
        h, hd, nh, nkv = c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads
        return (2 * h * hd * (nh + 2 * nkv) + nh * hd * h + 3 * h * c.intermediate_size
                + 2 * nh * hd * context)

    # ------------------------------------------------------------------------ the model
    def resolved_attention(self) -> str:
        if self.attention == "auto":
            return "flex" if self.fc.weight.is_cuda else "diagonal"
        return self.attention

    def _backend(self) -> str:
        backend = self.resolved_attention()
        if backend == "flex" and not self.fc.weight.is_cuda and torch.is_grad_enabled():
            raise UserError("algorithm.attention=flex cannot train on the CPU: PyTorch's CPU "
                            "flex_attention has no backward pass. Use algorithm.attention=auto "
                            "(flex on CUDA, diagonal elsewhere) or diagonal.")
        return backend

    def ttt_forward(self, aux: list[torch.Tensor], input_ids: torch.Tensor,
                    steps: int | None = None) -> list[torch.Tensor]:
        """Hidden states [B, L, H] after each TTT step (before the final norm)."""
        hidden = self.fc(torch.cat(aux, dim=-1))
        b, length = input_ids.shape
        cache: list = []
        outs = []
        base = torch.arange(length, device=input_ids.device)[None]
        backend = self._backend()
        for k in range(steps or self.ttt_length):
            ids = shift_left(input_ids, 1 + k)
            embeds = F.embedding(ids, self.embed_weight).to(hidden.dtype)
            cos, sin = self.rotary(hidden, base + k)
            hidden = self.midlayer(embeds, hidden, cos[:, None], sin[:, None], cache, backend)
            outs.append(hidden)
        return outs

    def extend(self, hidden: torch.Tensor, token_ids: torch.Tensor, start: int,
               cache: dict, positions: list[int] | None = None,
               allowed: torch.Tensor | None = None) -> torch.Tensor:
        """Inference: run the draft layer on n new positions (RoPE ``start``.., or
        ``positions``) whose queries see every cached key plus the new ones causally (or what
        the bool mask ``allowed`` [n, cached + n] permits); appends their keys/values."""
        attn = self.midlayer.self_attn
        layer = self.midlayer
        embeds = F.embedding(token_ids, self.embed_weight).to(hidden.dtype)
        x = torch.cat([layer.input_layernorm(embeds), layer.hidden_norm(hidden)], dim=-1)
        b, n, _ = x.shape
        q = attn.q_proj(x).view(b, n, attn.heads, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, n, attn.kv_heads, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, n, attn.kv_heads, attn.head_dim).transpose(1, 2)
        pos = (torch.tensor(positions, device=x.device) if positions is not None
               else torch.arange(start, start + n, device=x.device))[None]
        cos, sin = self.rotary(hidden, pos)
        q, k = apply_rope(q, cos[:, None], sin[:, None]), apply_rope(k, cos[:, None], sin[:, None])
        cache["k"] = k if cache.get("k") is None else torch.cat([cache["k"], k], dim=2)
        cache["v"] = v if cache.get("v") is None else torch.cat([cache["v"], v], dim=2)
        rep = attn.heads // attn.kv_heads
        keys = cache["k"].repeat_interleave(rep, dim=1)
        values = cache["v"].repeat_interleave(rep, dim=1)
        total = keys.shape[2]
        if allowed is None:
            allowed = torch.ones(n, total, dtype=torch.bool, device=x.device).tril(total - n)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
        h = hidden + attn.o_proj(out.transpose(1, 2).reshape(b, n, -1))
        return h + layer.mlp(layer.post_attention_layernorm(h))

    def proposer(self, num_draft: int | None = None, tree: bool = False,
                 top_k: int | None = None, depth: int | None = None,
                 total_tokens: int | None = None):
        """Drafting for the lossless decoder: a chain of autoregressive draft steps with the
        draft's own KV cache, feeding back its hidden states as in training; or (``tree``) the
        EAGLE-2 dynamic tree: expand the ``top_k`` best nodes per depth by cumulative
        log-probability, keep the best ``total_tokens``."""
        if tree:  # defaults: algorithm.tree_top_k, tree_depth, tree_total_tokens
            return Eagle3Tree(self, top_k or self.tree["top_k"], depth or self.tree["depth"],
                              total_tokens or self.tree["total_tokens"])
        return Eagle3Chain(self, num_draft or self.ttt_length)

    def draft_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden))

    @torch.no_grad()
    def soft_targets(self, final_hidden, needed):
        """Target probabilities over the draft vocab [B, L, Vd] and "target argmax is in the
        draft vocab" [B, L], at positions where ``needed`` (zeros elsewhere)."""
        b, length, _ = final_hidden.shape
        draft_ids = self.draft_ids
        probs = final_hidden.new_zeros((b, length, draft_ids.numel()), dtype=torch.float32)
        in_vocab = torch.zeros((b, length), dtype=torch.bool, device=final_hidden.device)
        if needed.any():
            h = final_hidden[needed]
            logits = F.linear(h, self.target_lm_head.to(h.dtype)).float()
            in_vocab[needed] = self.t2d[logits.argmax(-1)]
            probs[needed] = torch.softmax(logits[:, draft_ids], dim=-1)
        return probs, in_vocab

    def loss(self, features, batch):
        ids, mask = batch["input_ids"], batch["loss_mask"].bool()
        aux = [features.layers[i] for i in self.aux_layers]
        needed = shift_left(mask, 1)  # target logits at p are used when x_{p+1} is trained
        probs, in_vocab = self.soft_targets(features.final_hidden, needed)
        outs = self.ttt_forward(aux, ids)
        total = probs.new_zeros(())
        counters = {}
        c = self.draft_cfg
        tokens = float(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        positions, length = ids.numel(), ids.shape[1]
        # forward + backward = 3 x forward; a MAC is 2 FLOPs. Soft targets: forward only.
        flops = 6 * positions * 3 * c.hidden_size ** 2 \
            + float(needed.sum()) * 2 * c.hidden_size * c.vocab_size
        for k, hidden in enumerate(outs):
            flops += 6 * positions * self._layer_macs(length / 2 + k)
            valid = shift_left(mask, 2 + k) & shift_left(in_vocab, 1 + k)
            n = int(valid.sum())
            if n == 0:
                continue
            target = probs[:, 1 + k:][valid[:, : length - 1 - k]]  # probs at t+1+k
            logits = self.draft_logits(hidden[valid]).float()
            loss_k = -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
            total = total + (self.decay ** k) * loss_k
            with torch.no_grad():
                # argmax of a NaN row points at the NaN: never count a non-finite row as a hit
                finite = torch.isfinite(logits).all(-1) & torch.isfinite(target).all(-1)
                hits = ((logits.argmax(-1) == target.argmax(-1)) & finite).sum().float()
                count = torch.tensor(float(n))
                counters[f"top1/{k}"] = (hits, count)
                counters[f"loss/{k}"] = (loss_k.detach() * n, count)
            flops += 6 * n * c.hidden_size * c.draft_vocab_size
        counters["draft_flops"] = (torch.tensor(flops), torch.tensor(tokens))
        return total, counters


class Eagle3Chain:
    """Real draft positions p (target features f_p, token x_{p+1}) are kept in the draft's
    cache; a proposal appends speculative steps at RoPE positions N-1+j, exactly the
    training-time-test pattern, and is cropped away once the target has verified."""

    name = "eagle3_chain"

    def __init__(self, model: Eagle3, num_draft: int):
        self.m, self.k = model, num_draft

    def _features(self, out) -> torch.Tensor:
        aux = [out.layer_output(i) for i in self.m.aux_layers]
        w = self.m.fc.weight
        return self.m.fc(torch.cat(aux, dim=-1).to(w.dtype))

    def _crop(self, n: int) -> None:
        for key in ("k", "v"):
            if self.cache.get(key) is not None:
                self.cache[key] = self.cache[key][:, :, :n]

    def _to_target(self, hidden) -> int:
        i = int(self.m.draft_logits(hidden[0, -1]).argmax())
        return i + int(self.m.d2t[i])

    @torch.no_grad()
    def start(self, ids, out):
        self.cache = {}
        n = out.final_hidden.shape[1]
        tokens = torch.tensor([ids[1: n + 1]], device=self.m.fc.weight.device)
        self.last = self.m.extend(self._features(out), tokens, 0, self.cache)[:, -1:]
        self.n_real = n

    @torch.no_grad()
    def propose(self, ids):
        self._crop(self.n_real)
        hidden = self.last
        drafts = [self._to_target(hidden)]
        for j in range(1, self.k):
            tok = torch.tensor([[drafts[-1]]], device=hidden.device)
            hidden = self.m.extend(hidden, tok, self.n_real - 1 + j, self.cache)
            drafts.append(self._to_target(hidden))
        return drafts

    @torch.no_grad()
    def accept(self, ids, n_new, out):
        self._crop(self.n_real)
        n = out.final_hidden.shape[1]
        start = self.n_real
        tokens = torch.tensor([ids[start + 1: start + n + 1]], device=self.m.fc.weight.device)
        if tokens.shape[1] < n:  # generation stopped early (EOS / budget): nothing to draft
            return
        self.last = self.m.extend(self._features(out), tokens, start, self.cache)[:, -1:]
        self.n_real += n


class Eagle3Tree(Eagle3Chain):
    """EAGLE-2 dynamic tree on the EAGLE-3 draft. A node at depth d runs at RoPE position
    N-1+d and attends the real positions plus its own expanded ancestors: along any path this
    is exactly the chain (and the training-time-test) pattern."""

    name = "eagle3_tree"

    def __init__(self, model: Eagle3, top_k: int, depth: int, total_tokens: int):
        super().__init__(model, depth)
        self.top_k, self.depth, self.total = top_k, depth, total_tokens

    @torch.no_grad()
    def propose(self, ids):
        from specbench.decoding import Tree

        m = self.m
        self._crop(self.n_real)
        real = self.n_real
        tokens, parents, scores, node_depth = [], [], [], []

        def add_children(logits, parent_ids, parent_scores, depth):
            logp = torch.log_softmax(logits.float(), dim=-1)
            top = logp.topk(self.top_k, dim=-1)
            new = []
            for row, (pid, pscore) in enumerate(zip(parent_ids, parent_scores)):
                for lp, tok in zip(top.values[row].tolist(), top.indices[row].tolist()):
                    tokens.append(tok + int(m.d2t[tok]))
                    parents.append(pid)
                    scores.append(pscore + lp)
                    node_depth.append(depth)
                    new.append(len(tokens) - 1)
            return new

        frontier = add_children(m.draft_logits(self.last[0]), [-1], [0.0], 1)
        hidden_of: dict[int, torch.Tensor] = {}
        slot: dict[int, int] = {}  # node -> its index in the draft cache
        for d in range(1, self.depth):
            frontier = sorted(frontier, key=lambda i: -scores[i])[: self.top_k]
            hid = torch.stack([hidden_of.get(parents[i], self.last[0, 0]) for i in frontier])
            toks = torch.tensor([[tokens[i] for i in frontier]])  # target ids, as embedded
            cached = self.cache["k"].shape[2]
            allowed = torch.zeros(len(frontier), cached + len(frontier), dtype=torch.bool)
            allowed[:, :real] = True
            for row, node in enumerate(frontier):
                allowed[row, cached + row] = True
                p = parents[node]
                while p >= 0:
                    allowed[row, slot[p]] = True
                    p = parents[p]
            out = m.extend(hid[None], toks.to(hid.device), 0, self.cache,
                           positions=[real - 1 + d] * len(frontier),
                           allowed=allowed.to(hid.device))
            for row, node in enumerate(frontier):
                slot[node] = cached + row
                hidden_of[node] = out[0, row]
            frontier = add_children(m.draft_logits(out[0]), frontier,
                                    [scores[i] for i in frontier], d + 1)
        # best nodes; a parent scores >= its children and is created first, so the
        # selection is closed under ancestors
        chosen = sorted(range(len(tokens)), key=lambda i: (-scores[i], i))[: self.total]
        chosen = sorted(chosen)
        index = {node: j for j, node in enumerate(chosen)}
        return Tree([tokens[i] for i in chosen],
                    [index[parents[i]] if parents[i] >= 0 else -1 for i in chosen])
