"""The EAGLE-3 draft's KV cache at inference, in two kinds with one interface (``len``,
``crop``, ``prepare``, ``write``, ``advance``).

``DraftCache`` grows by concatenation: every draft forward runs at its own length.

``StaticDraftCache`` is allocated once, with room for a whole decode. Its forwards have fixed
shapes: the new keys and values go to slots given as a tensor, and every query attends over
the whole buffer through a mask that hides unused and stale slots. So a forward's shapes depend
only on how many tokens it adds: 1 for a chain step, ``top_k`` for a tree level, at most
depth + 1 for an accept. That is what ``torch.compile`` needs to build each forward once and
reuse it across steps and prompts (``compiled``: inductor, for CPUs; ``graphs``: CUDA graphs
through ``mode="reduce-overhead"``). ``static`` runs the same code eagerly: the CPU twin the
tests check. A prompt's prefill, whose length varies, always runs eagerly.
"""

from __future__ import annotations

import torch

STATIC_DRAFT_MODES = ("static", "compiled", "graphs")


class DraftCache:
    """Keys and values [1, kv_heads, n, head_dim] of the positions the draft has seen."""

    mode = "dynamic"

    def __init__(self):
        self.k = self.v = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def crop(self, n: int) -> None:
        if self.k is not None:
            self.k, self.v = self.k[:, :, :n], self.v[:, :, :n]

    def prepare(self, n_new: int, allowed: torch.Tensor | None, device) -> torch.Tensor:
        """The attention mask of ``n_new`` new queries over the keys after ``write``: what the
        bool mask ``allowed`` [n_new, len + n_new] permits, or every cached key plus the new
        ones causally."""
        total = len(self) + n_new
        if allowed is None:
            allowed = torch.ones(n_new, total, dtype=torch.bool, device=device).tril(total - n_new)
        return allowed

    def write(self, k: torch.Tensor, v: torch.Tensor):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def advance(self, n_new: int) -> None:
        """The length follows the tensors."""


class StaticDraftCache:
    """One preallocated buffer of ``max_len`` positions; ``n`` of them are in use."""

    def __init__(self, kv_heads: int, head_dim: int, max_len: int, dtype, device, mode: str):
        shape = (1, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        if torch.device(device).type == "cuda":  # CUDA graphs read and write them in place
            torch._dynamo.mark_static_address(self.k)
            torch._dynamo.mark_static_address(self.v)
        self.max_len, self.mode, self.n = max_len, mode, 0
        self.slots = torch.zeros(0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return self.n

    def crop(self, n: int) -> None:
        self.n = min(self.n, n)

    def prepare(self, n_new: int, allowed: torch.Tensor | None, device) -> torch.Tensor:
        """As ``DraftCache.prepare``, padded with hidden columns to the whole buffer; also sets
        the slots the new keys go to (``n`` .. ``n + n_new``)."""
        n = self.n
        if n + n_new > self.max_len:
            raise ValueError(f"the static draft cache ({self.max_len} positions) is full: "
                             f"{n} cached + {n_new} new")
        mask = torch.zeros(n_new, self.max_len, dtype=torch.bool, device=device)
        if allowed is None:
            mask[:, :n] = True
            mask[:, n: n + n_new] = torch.ones(n_new, n_new, dtype=torch.bool,
                                               device=device).tril()
        else:
            mask[:, : allowed.shape[1]] = allowed
        self.slots = torch.arange(n, n + n_new, device=device)
        return mask

    def write(self, k: torch.Tensor, v: torch.Tensor):
        self.k.index_copy_(2, self.slots, k)
        self.v.index_copy_(2, self.slots, v)
        return self.k, self.v

    def advance(self, n_new: int) -> None:
        self.n += n_new
