"""Hydra's building blocks: the head MLP (the reference's ``ResBlock`` stack) and the Hydra++
prefix-attention layer (one Llama decoder layer plus a final norm over the target's hidden
states, the reference's one-layer ``LlamaModel``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.eagle3.layers import DraftMLP, RMSNorm, apply_rope


class ResBlock(nn.Module):
    """res_connection(x) + SiLU(linear(x)). ``linear`` starts at weight 0; when the input is
    wider than the output (the first block of a head, over the concatenated input)
    ``res_connection`` is a Linear of its own, else the identity."""

    def __init__(self, in_size: int, hidden: int):
        super().__init__()
        self.linear = nn.Linear(in_size, hidden)
        nn.init.zeros_(self.linear.weight)
        self.res_connection = nn.Linear(in_size, hidden) if in_size != hidden else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_connection(x) + F.silu(self.linear(x))


def head_mlp(k: int, hidden: int, num_layers: int) -> nn.Sequential:
    """Head k: a block over [h_t, e(x_{t+1}), .., e(x_{t+1+k})] ((k+2)H -> H), then
    ``num_layers - 1`` independent H -> H blocks (the reference repeats one block object, so
    its later blocks share weights; these do not)."""
    return nn.Sequential(ResBlock((k + 2) * hidden, hidden),
                         *(ResBlock(hidden, hidden) for _ in range(num_layers - 1)))


def head_macs(k: int, hidden: int, num_layers: int) -> int:
    """Multiply-accumulates of head k's MLP on one position (the projection excluded)."""
    first = 2 * (k + 2) * hidden * hidden
    return first + (num_layers - 1) * hidden * hidden


class PrefixAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (c.num_attention_heads, c.num_key_value_heads,
                                                    c.head_dim)
        h = c.hidden_size
        self.q_proj = nn.Linear(h, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, h, bias=False)

    def forward(self, x, cos, sin, cache: dict | None):
        """Causal attention of n new positions over ``cache`` (``k``/``v`` of the earlier
        ones, extended here) plus themselves; ``cache=None``: the n positions alone."""
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            if cache.get("k") is not None:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        total = k.shape[2]
        allowed = torch.ones(n, total, dtype=torch.bool, device=x.device).tril(total - n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class PrefixDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = PrefixAttention(c)
        self.mlp = DraftMLP(c)

    def forward(self, x, cos, sin, cache):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class PrefixLayer(nn.Module):
    """Hydra++'s prefix attention: a Llama decoder layer and a final RMSNorm over the target's
    final hidden states (RoPE at their absolute positions). Training runs it over whole rows
    (right-padded, so causal attention never reaches padding); decoding extends a KV cache
    with each step's verified positions only, so the cache never needs rolling back."""

    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([PrefixDecoderLayer(c)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        # not a submodule: its inv_freq buffer stays fp32 when the draft is cast to bf16
        self._rotary = (LlamaRotaryEmbedding(config=c),)
        self.macs_per_position = c.hidden_size * (
            2 * self.layers[0].self_attn.heads * c.head_dim
            + 2 * self.layers[0].self_attn.kv_heads * c.head_dim + 3 * c.intermediate_size)
        self.attn_dim = c.num_attention_heads * c.head_dim

    def forward(self, hidden: torch.Tensor, start: int = 0, cache: dict | None = None):
        """[B, n, H] -> [B, n, H] for positions start .. start+n-1."""
        rotary = self._rotary[0].to(hidden.device)
        pos = torch.arange(start, start + hidden.shape[1], device=hidden.device)[None]
        cos, sin = rotary(hidden, pos)
        x = hidden
        for layer in self.layers:
            x = layer(x, cos[:, None], sin[:, None], cache)
        return self.norm(x)


def prefix_config(target_config):
    """The prefix layer's LlamaConfig: the target's shapes and RoPE, one layer."""
    from transformers import LlamaConfig

    from specbench.target import rope_theta_of

    c = target_config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    extra = {}
    params = getattr(c, "rope_parameters", None)
    if isinstance(params, dict):
        extra["rope_parameters"] = dict(params)
    out = LlamaConfig(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                      num_attention_heads=c.num_attention_heads,
                      num_key_value_heads=c.num_key_value_heads, head_dim=head_dim,
                      num_hidden_layers=1, vocab_size=c.vocab_size, rms_norm_eps=c.rms_norm_eps,
                      max_position_embeddings=c.max_position_embeddings,
                      rope_theta=rope_theta_of(c), **extra)
    scaling = getattr(c, "rope_scaling", None)
    if scaling is not None and not isinstance(params, dict):
        out.rope_scaling = scaling
    return out
