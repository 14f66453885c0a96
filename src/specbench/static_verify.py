"""Verify forwards with fixed shapes: a preallocated KV cache and the query padded to a few sizes.

The decoder's default (``decode.verify=dynamic``) grows a ``DynamicCache`` and runs each verify
forward at its own length, so every step has new shapes. Here every step has one of a few:

- the KV cache is a transformers ``StaticCache`` of ``max_len`` positions, allocated once per
  prompt; a step writes its entries after the ``n_cached`` kept ones, and the accepted ones are
  moved into place afterwards (a chain's already are);
- the query [pending token, draft nodes, side tokens] is padded up to the next of ``BUCKETS``
  (then to a multiple of the largest). Padding rows see the cache and themselves only, and no
  real row sees them, so they change no real output;
- the attention mask is always the full [1, 1, bucket, max_len] additive mask.

With fixed shapes, ``verify=graphs`` captures each bucket's forward as a CUDA graph
(``torch.compile(mode="reduce-overhead")``: one replay per step instead of hundreds of kernel
launches). ``verify=static`` runs the same code eagerly: the CPU twin the tests check for
exactness, and on a CPU ``verify=compiled`` runs it through inductor instead.
"""

from __future__ import annotations

import torch

from specbench.decoding import Tree, _cache_keyword, tree_allowed

BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def bucket(q: int) -> int:
    """The padded query length for ``q`` real tokens."""
    for b in BUCKETS:
        if q <= b:
            return b
    top = BUCKETS[-1]
    return -(-q // top) * top


def padded_mask(allowed: torch.Tensor, n_cached: int, size: int, max_len: int,
                dtype) -> torch.Tensor:
    """The additive mask [1, 1, size, max_len] for ``allowed`` ([q, q] bool over the new
    tokens): every row sees the ``n_cached`` cached positions; real rows see the new tokens
    ``allowed`` lets them; padding rows see only themselves. Stale entries past the new block
    are hidden from every row."""
    q = allowed.shape[0]
    ok = torch.zeros(size, max_len, dtype=torch.bool)
    ok[:, :n_cached] = True
    ok[:q, n_cached: n_cached + q] = allowed
    pad = torch.arange(q, size)
    ok[pad, n_cached + pad] = True
    mask = torch.zeros(size, max_len, dtype=dtype)
    mask[~ok] = torch.finfo(dtype).min
    return mask[None, None]


class StaticVerifier:
    """The target's forwards over one preallocated cache (see the module doc). ``mode``:
    ``static`` (eager), ``compiled`` (inductor, for CPUs) or ``graphs`` (CUDA graphs)."""

    def __init__(self, model, device, max_len: int, mode: str = "static"):
        from transformers import StaticCache

        self.model, self.device, self.max_len = model, device, max_len
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        self.cache_kw = _cache_keyword(model)
        self.forward, self.mode = self._forward, mode
        if mode == "graphs":
            self.forward = torch.compile(self._forward, mode="reduce-overhead", dynamic=False)
        elif mode == "compiled":
            self.forward = torch.compile(self._forward, dynamic=False)

    def _forward(self, ids, positions, mask):
        return self.model(input_ids=ids, position_ids=positions, attention_mask=mask,
                          use_cache=True, output_hidden_states=True,
                          **{self.cache_kw: self.cache})

    def _set_length(self, n: int) -> None:
        """Where the next write goes (transformers' StaticLayer appends at its length)."""
        for layer in self.cache.layers:
            if getattr(layer, "is_initialized", False):
                layer.cumulative_length.fill_(n)

    def prefill(self, prompt_ids: list[int]):
        """The prompt's forward, eager at its own length (it runs once per prompt)."""
        self._set_length(0)
        n = len(prompt_ids)
        if n + BUCKETS[-1] > self.max_len:
            raise ValueError(f"a {n}-token prompt leaves no room in a {self.max_len}-position "
                             "static cache")
        ids = torch.tensor([prompt_ids], device=self.device)
        allowed = torch.ones(n, n, dtype=torch.bool).tril()
        mask = padded_mask(allowed, 0, n, self.max_len, self.model.dtype).to(self.device)
        return self._forward(ids, torch.arange(n, device=self.device)[None], mask)

    def verify(self, n_cached: int, tokens: list[int], positions: list[int], tree: Tree):
        """One verify forward of ``tokens`` at ``positions`` (the pending token, then ``tree``'s
        nodes and side tokens), padded to its bucket; returns (logits [q, V], hidden states
        [1, q, H] each), as ``DynamicVerifier.verify`` does."""
        allowed = tree_allowed(tree)
        q = len(tokens)
        size = bucket(q)
        if n_cached + size > self.max_len:
            raise ValueError(f"the static cache ({self.max_len} positions) is full: "
                             f"{n_cached} cached + {size} new")
        pad = size - q
        ids = torch.tensor([tokens + tokens[-1:] * pad], device=self.device)
        top = max(positions)
        pos = torch.tensor([positions + list(range(top + 1, top + 1 + pad))],
                           device=self.device)
        mask = padded_mask(allowed, n_cached, size, self.max_len, self.model.dtype)
        self._set_length(n_cached)
        if self.forward is not self._forward and self.mode == "graphs":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are used up
        out = self.forward(ids, pos, mask.to(self.device))
        return out.logits[0, :q], tuple(h[:, :q] for h in out.hidden_states)

    def keep(self, n_cached: int, keep: list[int]) -> None:
        """Move the accepted new entries (offsets ``keep`` after ``n_cached``) into place."""
        if keep == list(range(len(keep))):
            return  # a chain's accepted entries are already where they belong
        src = torch.tensor([n_cached + k for k in keep], device=self.device)
        for layer in self.cache.layers:
            for t in (layer.keys, layer.values):
                t[:, :, n_cached: n_cached + len(keep)] = t.index_select(2, src)
