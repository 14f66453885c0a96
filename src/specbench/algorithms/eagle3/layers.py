"""The EAGLE-3 draft decoder layer. One attention module serves both paths: training-time test
(``forward``: a query at step k sees the step-0 keys causally and the later steps' keys at its
own position) and inference (``extend``: new positions over a KV cache, ``draft_cache.py``, under
a causal or a given boolean mask); both share ``DraftAttention.project`` (q/k/v projections and RoPE) and
``DraftLayer._block`` (norms, residuals and MLP)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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

    def project(self, x, cos, sin):
        """q [B, heads, n, d] and k, v [B, kv_heads, n, d] of ``x`` [B, n, 2H], RoPE on q, k."""
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def repeat_kv(self, t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(self.heads // self.kv_heads, dim=1)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))

    def forward(self, x, cos, sin, cache: list, backend: str):
        """Training-time test: ``cache`` holds (k, v) of the earlier steps; this step's are
        appended. A query sees the step-0 keys causally and each later step's key at its own
        position (``backend``: diagonal or flex)."""
        q, k, v = self.project(x, cos, sin)
        cache.append((k, v))
        keys = [self.repeat_kv(kk) for kk, _ in cache]
        values = [self.repeat_kv(vv) for _, vv in cache]
        if backend == "flex":
            out = _flex_ttt_attention(q, keys, values)
        else:
            out = _diagonal_ttt_attention(q, keys, values)
        return self.output(out)

    def extend(self, x, cos, sin, cache, mask: torch.Tensor):
        """Inference: n new positions whose keys/values ``cache`` stores (a ``DraftCache`` or
        ``StaticDraftCache``); their queries see the keys the bool ``mask`` [n, keys] permits
        (built by ``cache.prepare``)."""
        q, k, v = self.project(x, cos, sin)
        keys, values = cache.write(k, v)
        keys, values = self.repeat_kv(keys), self.repeat_kv(values)
        return self.output(F.scaled_dot_product_attention(q, keys, values, attn_mask=mask))


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

    def _block(self, embeds, hidden, attend):
        x = torch.cat([self.input_layernorm(embeds), self.hidden_norm(hidden)], dim=-1)
        h = hidden + attend(x)
        return h + self.mlp(self.post_attention_layernorm(h))

    def forward(self, embeds, hidden, cos, sin, cache: list, backend: str):
        """One training-time-test step (see ``DraftAttention.forward``)."""
        return self._block(embeds, hidden,
                           lambda x: self.self_attn(x, cos, sin, cache, backend))

    def extend(self, embeds, hidden, cos, sin, cache, mask):
        """New positions at inference (see ``DraftAttention.extend``)."""
        return self._block(embeds, hidden,
                           lambda x: self.self_attn.extend(x, cos, sin, cache, mask))
