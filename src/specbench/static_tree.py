"""Static draft trees of per-position ranks, shared by the head-based drafters (Medusa, Hydra).

A static tree is a list of *choices*: paths of per-position ranks. The path (r_0, .., r_d) is the
node holding the r_d-th best candidate at draft position d, under the node (r_0, .., r_{d-1})
(the root, the pending token, for d = 0). ``[(0,), (1,), (0, 0)]`` is the best and second-best
first token, and the best second token under the best first one. Every path's parent path must
be in the tree too (the set is closed under prefixes).

API (small and stable; both drafters import it):

- ``checked_choices(choices, num_heads, size)``: a user's ``algorithm.tree_choices`` checked
  (a clear error naming it), or the default tree of ``size`` nodes when it is None;
- ``default_tree(num_heads, size=32, topk=10)``: a heuristic tree of ``size`` nodes, for drafts
  without measured accuracies;
- ``measured_tree(accuracies, size)``: the tree of ``size`` nodes with the highest expected
  accepted length under measured per-position, per-rank accuracies (Medusa's construction);
- ``expected_length(choices, accuracies)``: that expected accepted length (bonus token included);
- ``order_choices(choices)``: the choices in decoding order (by depth, then rank), as
  ``tree_from_candidates`` lays them out;
- ``tree_from_candidates(choices, candidates)``: the ``decoding.Tree`` for one step, given each
  position's ranked candidate tokens;
- ``tree_topk(choices)`` / ``tree_depth(choices)``: how many candidates per position, and how
  many positions, a tree needs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from specbench.errors import UserError

Path = tuple[int, ...]


def checked_choices(choices, num_heads: int, size: int) -> list[Path]:
    """``algorithm.tree_choices`` as paths, checked: non-empty, ranks >= 0, at most
    ``num_heads`` long, listed once, closed under prefixes. None: ``default_tree`` of ``size``
    nodes (``algorithm.tree_size``)."""
    if choices is None:
        return default_tree(num_heads, size)
    paths = [tuple(int(r) for r in c) for c in choices]
    bad = [p for p in paths if not p or len(p) > num_heads or min(p) < 0
           or (len(p) > 1 and p[:-1] not in paths)]
    if not paths or bad or len(set(paths)) != len(paths):
        raise UserError(f"algorithm.tree_choices: every path must be a non-empty list of "
                        f"per-head ranks (>= 0), at most num_heads={num_heads} long, listed "
                        f"once, with its parent path listed too (bad: {bad or 'duplicates'}). "
                        "Fix the list, or set it to null for the default tree.")
    return paths


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


def _node_value(path: Path, accuracies: Sequence[Sequence[float]]) -> float:
    value = 1.0
    for d, r in enumerate(path):
        value *= float(accuracies[d][r])
    return value


def measured_tree(accuracies: Sequence[Sequence[float]], size: int) -> list[Path]:
    """A static tree of ``size`` nodes built from measured accuracies, best node first.

    ``accuracies[d][r]``: how often position d's rank-r candidate is the token the target
    accepts there (for Medusa, head d's held-out rank-r hit rate); the tree is at most
    ``len(accuracies)`` deep and uses ranks below ``len(accuracies[d])``. A node's value is the
    product of the rank accuracies along its path, its chance of being accepted if the
    positions are independent, so the tree's expected accepted length is 1 + the sum of its
    values. Nodes are added greedily, highest value first, among the children of the nodes
    already in (the root's included): the construction of Medusa's ``mc_sim_7b_63`` tree
    (``medusa/eval/gen_results.py`` there, which adds the next-ranked sibling or the first child
    of a chosen node; with ranks whose accuracy falls with the rank, as trained heads' do, the
    two pick the same nodes). Ties go to the shallower node, then the smaller ranks."""
    heap: list[tuple[float, int, Path]] = []

    def push_children(path: Path) -> None:
        d = len(path)
        if d < len(accuracies):
            for r in range(len(accuracies[d])):
                child = path + (r,)
                heapq.heappush(heap, (-_node_value(child, accuracies), d + 1, child))

    chosen: list[Path] = []
    push_children(())
    while heap and len(chosen) < size:
        _, _, path = heapq.heappop(heap)
        chosen.append(path)
        push_children(path)
    return chosen


def expected_length(choices: Sequence[Sequence[int]],
                    accuracies: Sequence[Sequence[float]]) -> float:
    """Expected tokens per verify step of a static tree under ``accuracies`` (as in
    ``measured_tree``): 1 (the target's bonus token) + the sum of the node values."""
    return 1.0 + sum(_node_value(tuple(c), accuracies) for c in choices)


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
