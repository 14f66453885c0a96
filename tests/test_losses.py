"""The fused projection + cross-entropy against plain PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specbench import losses
from specbench.losses import linear_cross_entropy


@pytest.mark.parametrize("chunk", [3, 512])
def test_matches_cross_entropy_fp32(monkeypatch, chunk):
    monkeypatch.setattr(losses, "CHUNK_ROWS", chunk)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(37, 16, generator=g, requires_grad=True)
    w = torch.randn(50, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 50, (37,), generator=g)
    loss, top1, top5 = linear_cross_entropy(z, w, y)
    logits = z @ w.T
    ref = F.cross_entropy(logits, y)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    assert int(top1) == int((logits.argmax(-1) == y).sum())
    assert int(top5) == int((logits.topk(5, -1).indices == y[:, None]).any(-1).sum())
    gz, gw = torch.autograd.grad(loss, (z, w))
    rz, rw = torch.autograd.grad(ref, (z, w))
    torch.testing.assert_close(gz, rz, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, rw, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_close_and_grads_fp32():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, 32, generator=g, requires_grad=True)
    w = torch.randn(300, 32, generator=g, requires_grad=True)
    y = torch.randint(0, 300, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = linear_cross_entropy(z, w, y)
    loss.backward()
    assert w.grad.dtype == torch.float32 and z.grad.dtype == torch.float32
    ref = F.cross_entropy(z @ w.T, y)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=2e-2)


def test_frozen_weight_gets_no_grad():
    z = torch.randn(5, 4, requires_grad=True)
    w = torch.randn(7, 4)
    loss, _, _ = linear_cross_entropy(z, w, torch.zeros(5, dtype=torch.long))
    loss.backward()
    assert z.grad is not None and w.grad is None


def test_compiled_kernels_match_eager():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(40, 300, generator=g).to(torch.bfloat16)
    target = logits[:, 7].float()
    lse_e, rank_e = losses._lse_rank_eager(logits.clone(), target)
    lse_c, rank_c = torch.compile(losses._lse_rank_fused, dynamic=True)(logits.clone(), target)
    torch.testing.assert_close(lse_c, lse_e)
    assert torch.equal(rank_c, rank_e)
    scale = torch.tensor(0.25)
    labels = torch.full((40,), 7)
    ge = losses._softmax_grad_eager(logits.clone(), lse_e, labels, scale)
    gc = torch.compile(losses._softmax_grad_fused, dynamic=True)(logits.clone(), lse_e, labels,
                                                                 scale)
    torch.testing.assert_close(gc.float(), ge.float(), rtol=1e-2, atol=1e-3)


def test_bf16_gradient_stays_accurate_on_confident_rows():
    """The one-hot is subtracted in fp32 before the bf16 cast: on rows where the label has
    probability ~1 the gradient is tiny and would otherwise vanish in cancellation."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(256, 32, generator=g)
    w = torch.randn(500, 32, generator=g)
    y = (z @ w.T).argmax(-1)
    z = (4 * z).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = linear_cross_entropy(z, w, y)
    (gz,) = torch.autograd.grad(loss, z)
    zr = z.detach().requires_grad_()
    (rz,) = torch.autograd.grad(F.cross_entropy(zr @ w.T, y), zr)
    za = z.detach().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # PyTorch's own bf16 path, for scale
        (az,) = torch.autograd.grad(F.cross_entropy(za @ w.T, y), za)
    ours, theirs = ((gz - rz).norm() / rz.norm(), (az - rz).norm() / rz.norm())
    assert ours <= 1.05 * theirs, (float(ours), float(theirs))
