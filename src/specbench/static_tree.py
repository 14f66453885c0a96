"""Static draft trees of per-position ranks, shared by the head-based drafters (Medusa, Hydra).

A static tree is a list of *choices*: paths of per-position ranks. The path (r_0, .., r_d) is the
node holding the r_d-th best candidate at draft position d, under the node (r_0, .., r_{d-1})
(the root, the pending token, for d = 0). ``[(0,), (1,), (0, 0)]`` is the best and second-best
first token, and the best second token under the best first one. Every path's parent path must
be in the tree too (the set is closed under prefixes).

API (small and stable; both drafters import it):

- ``default_tree(num_heads, size=32, topk=10)``: a heuristic tree of ``size`` nodes, for drafts
  without measured accuracies;
- ``order_choices(choices)``: the choices in decoding order (by depth, then rank), as
  ``tree_from_candidates`` lays them out;
- ``tree_from_candidates(choices, candidates)``: the ``decoding.Tree`` for one step, given each
  position's ranked candidate tokens;
- ``tree_topk(choices)`` / ``tree_depth(choices)``: how many candidates per position, and how
  many positions, a tree needs.
"""

from __future__ import annotations

from collections.abc import Sequence

Path = tuple[int, ...]


def default_tree(num_heads: int, size: int = 32, topk: int = 10) -> list[Path]:
    """A static tree of ``size`` nodes: paths of per-head ranks scored by
    prod_d 0.6^d / (rank_d + 1), best first. A child always scores below its parent, so the set
    is closed under prefixes. Trained accuracies would give better trees; this is the default
    before any are measured."""
    frontier = [((r,), 1.0 / (r + 1)) for r in range(topk)]
    chosen: list[tuple[Path, float]] = []
    while frontier and len(chosen) < size:
        frontier.sort(key=lambda x: -x[1])
        path, score = frontier.pop(0)
        chosen.append((path, score))
        if len(path) < num_heads:
            frontier += [(path + (r,), score * 0.6 / (r + 1)) for r in range(topk)]
    return [p for p, _ in chosen]


def order_choices(choices: Sequence[Sequence[int]]) -> list[Path]:
    """The paths as tuples in decoding order: shallower first, then by ranks."""
    return sorted((tuple(c) for c in choices), key=lambda c: (len(c), c))


def tree_depth(choices: Sequence[Sequence[int]]) -> int:
    """Draft positions the tree spans (its longest path)."""
    return max(len(c) for c in choices)


def tree_topk(choices: Sequence[Sequence[int]]) -> int:
    """Candidates needed per position: one more than the highest rank used."""
    return max(max(c) for c in choices) + 1


def tree_from_candidates(choices: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]):
    """The ``decoding.Tree`` of one draft step.

    ``choices``: the static tree's paths (any order; laid out as ``order_choices`` orders them).
    ``candidates[d]``: position d's candidate tokens, best first, at least ``tree_topk(choices)``
    of them, for d < ``tree_depth(choices)``. Node (r_0, .., r_d) gets ``candidates[d][r_d]``;
    its parent is the node (r_0, .., r_{d-1}), or the pending token for a one-rank path."""
    from specbench.decoding import Tree

    ordered = order_choices(choices)
    index = {c: i for i, c in enumerate(ordered)}
    tokens = [int(candidates[len(c) - 1][c[-1]]) for c in ordered]
    parents = [index[c[:-1]] if len(c) > 1 else -1 for c in ordered]
    return Tree(tokens, parents)
