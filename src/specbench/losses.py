"""A fused vocabulary projection + cross-entropy, so the draft's loss costs its matmuls and little
else.

``linear_cross_entropy(z, weight, labels)`` equals ``F.cross_entropy(z @ weight.T, labels)`` (mean
over rows) but never builds an fp32 copy of the [N, V] logits: the logits are kept once in the
compute dtype (bf16 under autocast), the log-sum-exp is taken in fp32 chunk by chunk, and the
backward pass turns the stored logits into the softmax gradient and runs two matmuls.
It also returns top-1 / top-5 hit counts, computed from the same logits (a label is in the top k
when fewer than k logits are strictly larger than its own).
"""

from __future__ import annotations

import os
import warnings

import torch

CHUNK_ROWS = 512


def _lse_rank_eager(logits: torch.Tensor, target_logit: torch.Tensor):
    """fp32 log-sum-exp of each row, and how many logits beat the label's own."""
    n = logits.shape[0]
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    rank = torch.empty(n, dtype=torch.long, device=logits.device)
    for i in range(0, n, CHUNK_ROWS):
        chunk = logits[i: i + CHUNK_ROWS].float()
        lse[i: i + CHUNK_ROWS] = torch.logsumexp(chunk, dim=-1)
        rank[i: i + CHUNK_ROWS] = (chunk > target_logit[i: i + CHUNK_ROWS, None]).sum(-1)
    return lse, rank


def _softmax_grad_eager(logits: torch.Tensor, lse: torch.Tensor, labels: torch.Tensor,
                        scale: torch.Tensor):
    """scale * (softmax(logits) - onehot(labels)), in fp32, written over ``logits`` chunk by
    chunk (subtracting the one-hot before the cast keeps confident rows accurate in bf16)."""
    for i in range(0, logits.shape[0], CHUNK_ROWS):
        p = torch.exp(logits[i: i + CHUNK_ROWS].float() - lse[i: i + CHUNK_ROWS, None])
        p.scatter_add_(1, labels[i: i + CHUNK_ROWS, None],
                       torch.full((p.shape[0], 1), -1.0, device=p.device))
        logits[i: i + CHUNK_ROWS] = (p * scale).to(logits.dtype)
    return logits


def _lse_rank_fused(logits, target_logit):
    x = logits.float()
    return torch.logsumexp(x, dim=-1), (x > target_logit[:, None]).sum(-1)


def _softmax_grad_fused(logits, lse, labels, scale):
    p = torch.exp(logits.float() - lse[:, None])
    onehot = torch.arange(logits.shape[1], device=logits.device)[None] == labels[:, None]
    return ((p - onehot.float()) * scale).to(logits.dtype)


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(t.device.type):
        return torch.get_autocast_dtype(t.device.type)
    return t.dtype


_KERNELS: dict[str, object] = {}


def _kernels():
    """torch.compile fuses the elementwise passes over [N, V] into one loop each (about 10x
    faster on a CPU than eager's separate passes). Falls back to eager, with a warning, where
    compilation is unavailable; SPECBENCH_COMPILE=0 forces eager."""
    if not _KERNELS:
        _KERNELS["eager"] = (_lse_rank_eager, _softmax_grad_eager)
        if os.environ.get("SPECBENCH_COMPILE", "1") != "0":
            _KERNELS["compiled"] = (torch.compile(_lse_rank_fused, dynamic=True),
                                    torch.compile(_softmax_grad_fused, dynamic=True))
    return _KERNELS.get("compiled", _KERNELS["eager"])


def _call(index: int, *args):
    try:
        return _kernels()[index](*args)
    except Exception as err:  # no compiler, unsupported backend...
        if "compiled" not in _KERNELS:
            raise
        warnings.warn(f"torch.compile is unavailable here ({type(err).__name__}: "
                      f"{str(err)[:200]}); using the slower eager loss kernels.", stacklevel=2)
        del _KERNELS["compiled"]
        return _kernels()[index](*args)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, weight, labels):
        with torch.autocast(z.device.type, enabled=False):
            logits = z @ weight.T  # [N, V] in the compute dtype
            target_logit = logits.gather(1, labels[:, None]).squeeze(1).float()
            lse, rank = _call(0, logits, target_logit)
        ctx.save_for_backward(z, weight, labels, logits, lse)
        loss = (lse - target_logit).mean()
        # a row whose logits are not finite (NaN weights or features) is never a hit
        finite = torch.isfinite(lse) & torch.isfinite(target_logit)
        return loss, ((rank == 0) & finite).sum(), ((rank < 5) & finite).sum()

    @staticmethod
    def backward(ctx, grad_loss, _g1, _g5):
        z, weight, labels, logits, lse = ctx.saved_tensors
        n = logits.shape[0]
        scale = grad_loss.float() / n
        with torch.autocast(z.device.type, enabled=False):
            grad = _call(1, logits, lse, labels, scale)  # scale * (softmax - onehot)
            grad_z = grad @ weight if ctx.needs_input_grad[0] else None
            grad_w = grad.T @ z if ctx.needs_input_grad[1] else None
        return grad_z, grad_w, None


def linear_cross_entropy(z: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor):
    """Mean cross-entropy of ``z @ weight.T`` against ``labels``, plus top-1 and top-5 hits.

    ``z``: [N, H]; ``weight``: [V, H]; ``labels``: [N] int64. Under autocast both operands are
    cast to the autocast dtype (the casts are differentiable, so fp32 master weights get fp32
    gradients). Returns (loss, top1_hits, top5_hits); the hit counts carry no gradient.
    """
    dtype = _compute_dtype(z)
    loss, top1, top5 = _LinearCrossEntropy.apply(z.to(dtype), weight.to(dtype), labels)
    return loss, top1, top5


CHUNK_ROWS = 1024  # chunked_cross_entropy builds this many rows of logits at a time


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Per-row cross-entropy of ``z @ weight.T`` against ``labels`` and the top-1 hits, chunk
    by chunk: only ``z`` and the fp32 log-sum-exp are kept for backward, which rebuilds each
    chunk's logits. ``weight`` (the frozen target lm_head) gets no gradient. The elementwise
    passes over the logits are the kernels above (compiled where torch.compile works, eager
    otherwise). DFlash's loss: many block positions over a large vocabulary."""

    @staticmethod
    def forward(ctx, z, weight, labels):
        dtype = _compute_dtype(z)
        with torch.autocast(z.device.type, enabled=False):
            zc, wc = z.to(dtype), weight.to(dtype)
            n = z.shape[0]
            ce = torch.empty(n, dtype=torch.float32, device=z.device)
            lse = torch.empty_like(ce)
            hits = torch.empty(n, dtype=torch.bool, device=z.device)
            for i in range(0, n, CHUNK_ROWS):
                rows = slice(i, i + CHUNK_ROWS)
                logits = zc[rows] @ wc.T
                target = logits.gather(1, labels[rows, None]).squeeze(1).float()
                lse[rows], rank = _call(0, logits, target)
                ce[rows] = lse[rows] - target
                # a row whose logits are not finite is never a hit
                hits[rows] = (rank == 0) & torch.isfinite(lse[rows]) & torch.isfinite(target)
        ctx.save_for_backward(zc, wc, labels, lse)
        ctx.z_dtype = z.dtype
        ctx.mark_non_differentiable(hits)
        return ce, hits

    @staticmethod
    def backward(ctx, grad_ce, _grad_hits):
        zc, wc, labels, lse = ctx.saved_tensors
        grad = torch.empty_like(zc)
        one = torch.ones((), dtype=torch.float32, device=zc.device)
        with torch.autocast(zc.device.type, enabled=False):
            for i in range(0, zc.shape[0], CHUNK_ROWS):
                rows = slice(i, i + CHUNK_ROWS)
                soft = _call(1, zc[rows] @ wc.T, lse[rows], labels[rows], one)  # p - onehot
                grad[rows] = (soft @ wc) * grad_ce[rows, None].to(zc.dtype)
        return grad.to(ctx.z_dtype), None, None


def chunked_cross_entropy(z, weight, labels):
    """(cross-entropy per row in fp32, top-1 hit per row) of the logits ``z @ weight.T``."""
    if z.shape[0] == 0:
        return z.new_zeros(0, dtype=torch.float32), labels.new_zeros(0, dtype=torch.bool)
    return _ChunkedCrossEntropy.apply(z, weight, labels)
