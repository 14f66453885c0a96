"""Hydra's proposers for the lossless decoder, and its static-tree settings.

Both read the head state s_t at the last verified position t (the target's final hidden state,
or the prefix layer's output over all verified positions, kept in a KV cache that only ever
grows: it sees verified positions only). The pending token is x_{t+1}; head k reads s_t and
x_{t+1} .. x_{t+1+k} and drafts x_{t+2+k}."""

from __future__ import annotations

import torch

from specbench.static_tree import checked_choices, order_choices, tree_depth, tree_topk


def tree_choices(cfg, num_heads: int) -> list[tuple[int, ...]]:
    """``algorithm.tree_choices`` checked, or the default tree of ``algorithm.tree_size``."""
    return checked_choices(cfg.tree_choices, num_heads, int(cfg.tree_size))


class HydraChain:
    """Sequential drafting: head k runs after heads 0..k-1 chose their tokens, on
    [s_t, e(pending), e(d_0), .., e(d_{k-1})]."""

    name = "hydra_chain"

    def __init__(self, hydra, num_draft: int):
        self.m, self.k = hydra, min(num_draft, hydra.num_heads)

    def _dtype(self):
        return next(self.m.parameters()).dtype

    def _advance(self, hidden: torch.Tensor) -> None:
        """Take the target's hidden states [1, n, H] at the next n verified positions."""
        states = self.m.head_states(hidden.to(self._dtype()), self.pos, self.cache)
        self.pos += hidden.shape[1]
        self.state = states[0, -1]

    @torch.no_grad()
    def start(self, ids, out):
        self.pos, self.cache = 0, {}
        self._advance(out.final_hidden)

    @torch.no_grad()
    def propose(self, ids):
        tokens = [ids[-1]]
        for k in range(self.k):
            path = torch.tensor(tokens, device=self.state.device)
            tokens.append(int(self.m.head_logits(k, self.state, path).argmax()))
        return tokens[1:]

    @torch.no_grad()
    def accept(self, ids, n_new, out):
        self._advance(out.final_hidden)


class HydraTree(HydraChain):
    """The Medusa-style static tree of per-head ranks, where node (r_0, .., r_d) holds the
    r_d-th best token of head d *given its own path*: head d runs once per depth-d node that
    has children (batched), on s_t and the tokens from the pending one down to that node."""

    name = "hydra_tree"

    def __init__(self, hydra, choices: list[tuple[int, ...]]):
        super().__init__(hydra, hydra.num_heads)
        depth = tree_depth(choices)
        if depth > hydra.num_heads:
            raise ValueError(f"tree depth {depth} exceeds the {hydra.num_heads} heads")
        self.choices = order_choices(choices)
        self.index = {c: i for i, c in enumerate(self.choices)}
        self.budget = {"nodes": len(self.choices)}
        # per depth d: the parent paths (length d) with children, and the ranks they need
        self.parents = [sorted({c[:-1] for c in self.choices if len(c) == d + 1})
                        for d in range(depth)]
        self.topk = [tree_topk([c for c in self.choices if len(c) == d + 1])
                     for d in range(depth)]

    @torch.no_grad()
    def propose(self, ids):
        from specbench.decoding import Tree

        seq = {(): [ids[-1]]}  # path -> its tokens, the pending token first
        for d, parents in enumerate(self.parents):
            paths = torch.tensor([seq[p] for p in parents], device=self.state.device)
            states = self.state.expand(len(parents), -1)
            top = self.m.head_logits(d, states, paths).topk(self.topk[d], dim=-1).indices
            for i, p in enumerate(parents):
                for r, token in enumerate(top[i].tolist()):
                    if p + (r,) in self.index:
                        seq[p + (r,)] = seq[p] + [token]
        tokens = [seq[c][-1] for c in self.choices]
        parents = [self.index[c[:-1]] if len(c) > 1 else -1 for c in self.choices]
        return Tree(tokens, parents)
