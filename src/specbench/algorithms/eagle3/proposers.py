"""The EAGLE-3 proposers for the lossless decoder: a chain of autoregressive draft steps, and
the EAGLE-2 dynamic tree. Both keep the draft's own KV cache of the real positions and run
speculative steps at exactly the training-time-test positions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from specbench.algorithms.eagle3.model import Eagle3


class Eagle3Chain:
    """Real draft positions p (target features f_p, token x_{p+1}) are kept in the draft's
    cache; a proposal appends speculative steps at RoPE positions N-1+j, exactly the
    training-time-test pattern, and is cropped away once the target has verified."""

    name = "eagle3_chain"

    def __init__(self, model: Eagle3, num_draft: int):
        self.m, self.k = model, num_draft
        self.cache_mode, self.positions = "dynamic", 0

    def use_verify_mode(self, mode: str, positions: int) -> None:
        """Draft forwards the way ``decode.verify=mode`` runs the target's: ``dynamic`` over a
        growing cache, the static modes with fixed shapes over a preallocated one
        (``draft_cache.py``) with room for ``positions`` real ones plus the speculative ones."""
        self.cache_mode = mode
        self.positions = positions + self.k * getattr(self, "top_k", 1) + 64

    def _features(self, out) -> torch.Tensor:
        aux = [out.layer_output(i) for i in self.m.aux_layers]
        w = self.m.fc.weight
        return self.m.fc(torch.cat(aux, dim=-1).to(w.dtype))

    def _crop(self, n: int) -> None:
        self.cache.crop(n)

    def _to_target(self, hidden) -> int:
        i = int(self.m.draft_logits(hidden[0, -1]).argmax())
        return i + int(self.m.d2t[i])

    @torch.no_grad()
    def start(self, ids, out):
        self.cache = self.m.new_cache(self.cache_mode, self.positions)
        n = out.final_hidden.shape[1]
        tokens = torch.tensor([ids[1: n + 1]], device=self.m.fc.weight.device)
        self.last = self.m.extend(self._features(out), tokens, 0, self.cache,
                                  eager=True)[:, -1:]
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
    """EAGLE-2 dynamic tree on the EAGLE-3 draft, with the reference's settings (SafeAILab/EAGLE
    ``topK_genrate``): the root's ``top_k`` children form level 1; then ``depth`` times, the
    ``top_k`` best nodes of the newest level (cumulative log-probability) are run through the
    draft and each gets ``top_k`` children, so depth + 1 levels; the best ``total_token`` - 1
    nodes are verified with the root. A node at level d runs at RoPE position N-1+d and attends
    the real positions plus its own ancestors: along any path this is exactly the chain (and
    the training-time-test) pattern."""

    name = "eagle3_tree"

    def __init__(self, model: Eagle3, top_k: int, depth: int, total_token: int):
        super().__init__(model, depth + 1)
        self.top_k, self.depth, self.total = top_k, depth, total_token
        candidates = top_k + depth * top_k * top_k
        # the node budget, stated beside every tree result (tree size is a confound)
        self.budget = {"top_k": top_k, "depth": depth, "total_token": total_token,
                       "levels": depth + 1, "max_nodes": min(total_token - 1, candidates)}

    def describe(self) -> dict:
        return dict(self.budget)

    @torch.no_grad()
    def propose(self, ids):
        from specbench.decoding import Tree  # decoding imports no algorithm: no cycle, lazily

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
        for d in range(1, self.depth + 1):
            frontier = sorted(frontier, key=lambda i: -scores[i])[: self.top_k]
            hid = torch.stack([hidden_of.get(parents[i], self.last[0, 0]) for i in frontier])
            toks = torch.tensor([[tokens[i] for i in frontier]])  # target ids, as embedded
            cached = len(self.cache)
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
        chosen = sorted(range(len(tokens)), key=lambda i: (-scores[i], i))[: self.total - 1]
        chosen = sorted(chosen)
        index = {node: j for j, node in enumerate(chosen)}
        return Tree([tokens[i] for i in chosen],
                    [index[parents[i]] if parents[i] >= 0 else -1 for i in chosen])
