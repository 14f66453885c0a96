"""The DFlash draft decoder layer (Qwen3-style: per-head q_norm/k_norm, SwiGLU) and its block
attention. One attention function serves training (many blocks per sequence) and decoding (one
block): a block's queries see the context keys before its anchor and every key of their own
block, never another block's. It scores the context [.., blocks x block_size, S] and the block
[.., blocks, block_size, block_size] separately and takes one softmax over both, so no
[blocks x block_size, S + blocks x block_size] mask is ever built."""

from __future__ import annotations

import math

import torch
from torch import nn

from specbench.algorithms.eagle3.layers import DraftMLP, RMSNorm, apply_rope


def draft_config(cfg, target_config):
    """The draft layers' transformers config (shapes, RMSNorm epsilon, the target's RoPE),
    derived from the target's; ``algorithm.*`` fields override the widths."""
    from transformers import LlamaConfig

    from specbench.target import rope_theta_of

    h = target_config.hidden_size
    head_dim = getattr(target_config, "head_dim", None) or h // target_config.num_attention_heads
    rope = {}
    params = getattr(target_config, "rope_parameters", None)
    if isinstance(params, dict):
        rope["rope_parameters"] = dict(params)
    c = LlamaConfig(
        hidden_size=h, intermediate_size=cfg.intermediate_size or target_config.intermediate_size,
        num_attention_heads=cfg.num_attention_heads or target_config.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads or target_config.num_key_value_heads,
        head_dim=head_dim, num_hidden_layers=int(cfg.num_layers),
        vocab_size=target_config.vocab_size, rms_norm_eps=target_config.rms_norm_eps,
        hidden_act="silu", max_position_embeddings=target_config.max_position_embeddings,
        tie_word_embeddings=False, rope_theta=rope_theta_of(target_config), **rope)
    scaling = getattr(target_config, "rope_scaling", None)
    if scaling is not None and not isinstance(params, dict):
        c.rope_scaling = scaling
    return c


def block_attention(q, ctx_k, ctx_v, blk_k, blk_v, anchors, block: int):
    """q, blk_k, blk_v: [b, heads, N * block, d] (N blocks of ``block`` tokens); ctx_k, ctx_v:
    [b, heads, S, d]; anchors: [b, N] (a block anchored at a sees context positions < a).
    Returns [b, heads, N * block, d]."""
    b, h, nb, d = q.shape
    n, s = nb // block, ctx_k.shape[2]
    scale = 1.0 / math.sqrt(d)
    s_ctx = (q @ ctx_k.transpose(-1, -2)) * scale  # [b, h, N*B, S]
    visible = torch.arange(s, device=q.device)[None, None] < anchors[..., None]  # [b, N, S]
    s_ctx = s_ctx.view(b, h, n, block, s).masked_fill(~visible[:, None, :, None], float("-inf"))
    qb = q.view(b, h, n, block, d)
    s_blk = (qb @ blk_k.view(b, h, n, block, d).transpose(-1, -2)) * scale  # [b, h, N, B, B]
    probs = torch.softmax(torch.cat([s_ctx, s_blk], dim=-1).float(), dim=-1).to(q.dtype)
    p_ctx, p_blk = probs[..., :s], probs[..., s:]
    out = p_ctx.reshape(b, h, nb, s) @ ctx_v
    return out + (p_blk @ blk_v.view(b, h, n, block, d)).view(b, h, nb, d)


class DFlashAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (c.num_attention_heads, c.num_key_value_heads,
                                                    c.head_dim)
        h = c.hidden_size
        self.q_proj = nn.Linear(h, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, h, bias=False)
        self.q_norm = RMSNorm(self.head_dim, c.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, c.rms_norm_eps)

    def _split(self, t: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, heads, self.head_dim)

    def key_value(self, x, cos, sin):
        """k (k_norm, RoPE) and v [b, kv_heads, n, d] of ``x`` [b, n, H]: the context's (fed
        the fused context, no input_layernorm) and the block's share these weights."""
        k = self.k_norm(self._split(self.k_proj(x), self.kv_heads)).transpose(1, 2)
        v = self._split(self.v_proj(x), self.kv_heads).transpose(1, 2)
        return apply_rope(k, cos, sin), v

    def repeat_kv(self, t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(self.heads // self.kv_heads, dim=1)

    def forward(self, x, cos, sin, ctx_kv, anchors, block: int):
        """Block tokens ``x`` [b, N * block, H] (after input_layernorm) at RoPE ``cos``/``sin``
        over the context keys/values ``ctx_kv`` (from ``key_value``)."""
        b, nb, _ = x.shape
        q = self.q_norm(self._split(self.q_proj(x), self.heads)).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k, v = self.key_value(x, cos, sin)
        ctx_k, ctx_v = ctx_kv
        out = block_attention(q, self.repeat_kv(ctx_k), self.repeat_kv(ctx_v), self.repeat_kv(k),
                              self.repeat_kv(v), anchors, block)
        return self.o_proj(out.transpose(1, 2).reshape(b, nb, -1))


class DFlashLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = DFlashAttention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = DraftMLP(c)

    def forward(self, x, cos, sin, ctx_kv, anchors, block: int):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, ctx_kv, anchors, block)
        return h + self.mlp(self.post_attention_layernorm(h))


def layer_macs(c, context: float) -> float:
    """Multiply-accumulates of one draft layer at one block token attending ``context`` keys
    (context and block keys together)."""
    h, d, nh, nkv = c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads
    return (h * d * (nh + 2 * nkv) + nh * d * h + 3 * h * c.intermediate_size
            + 2 * nh * d * context)
