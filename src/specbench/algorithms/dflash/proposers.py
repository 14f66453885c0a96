"""The DFlash block proposer for the lossless decoder: one draft forward over
[pending token, MASK x (block_size - 1)] drafts a block, verified as a chain. The draft's cache
holds only context keys/values (the fused target features of committed positions); a block's
own keys are never kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from specbench.algorithms.dflash.model import DFlash


class DFlashBlock:
    """Context position t carries the target's features after x_0 .. x_t; the block is
    anchored at the pending token (position len(ids) - 1, the first position without
    features), exactly as a training block anchored there sees the context before it."""

    name = "dflash_block"

    def __init__(self, model: DFlash, num_draft: int):
        self.m, self.k = model, num_draft
        self.budget = {"block_size": model.block_size, "draft_tokens": num_draft}

    def describe(self) -> dict:
        return dict(self.budget)

    def _append(self, out, count: int) -> None:
        w = self.m.fc.weight
        feats = [out.layer_output(i)[:, :count].to(w.dtype) for i in self.m.target_layers]
        kv = self.m.context_kv(self.m.context(feats), self.n_ctx)
        if self.cache is None:
            self.cache = kv
        else:
            self.cache = [(torch.cat([k0, k1], 2), torch.cat([v0, v1], 2))
                          for (k0, v0), (k1, v1) in zip(self.cache, kv)]
        self.n_ctx += count

    @torch.no_grad()
    def start(self, ids, out):
        self.cache, self.n_ctx = None, 0
        self._append(out, out.final_hidden.shape[1])

    @torch.no_grad()
    def propose(self, ids):
        m = self.m
        device = m.fc.weight.device
        anchor = len(ids) - 1  # == self.n_ctx: every committed position is context
        block = torch.full((1, 1, m.block_size), m.mask_token_id, dtype=torch.long,
                           device=device)
        block[0, 0, 0] = ids[-1]
        hidden = m.block_hidden(self.cache, block, torch.tensor([[anchor]], device=device),
                                m.fc.weight.dtype)
        h = hidden[0, 0, 1:]
        logits = F.linear(h, m.target_lm_head.to(h.dtype))
        return logits.argmax(-1).tolist()[: self.k]

    @torch.no_grad()
    def accept(self, ids, n_new, out):
        # out: the target's states at the previous pending token and the accepted drafts;
        # an EOS / budget stop may commit fewer than that (then decoding ends anyway)
        count = min(out.final_hidden.shape[1], len(ids) - 1 - self.n_ctx)
        if count > 0:
            self._append(out, count)
