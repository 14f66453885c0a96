"""static_tree: the static draft trees Medusa and Hydra share (default, measured, -> Tree)."""

from __future__ import annotations

import itertools
import math

import pytest

from specbench.static_tree import (
    default_tree,
    expected_length,
    measured_tree,
    order_choices,
    tree_depth,
    tree_from_candidates,
    tree_topk,
)


def closed_under_prefixes(choices):
    s = set(choices)
    return all(len(c) == 1 or c[:-1] in s for c in choices)


def test_medusa_uses_the_shared_default_tree():
    from specbench.algorithms import medusa

    assert medusa.default_tree is default_tree
    tree = default_tree(4, 32)
    assert len(tree) == 32 and len(set(tree)) == 32 and closed_under_prefixes(tree)
    assert tree[:5] == [(0,), (0, 0), (1,), (0, 0, 0), (2,)]  # scores 1, .6, .5, .36, .33


def test_choices_become_a_tree_of_the_candidates():
    choices = [[0, 0], [1], [0], [0, 1], [1, 0]]  # any order
    candidates = [[10, 11, 12], [20, 21, 22]]  # position d's tokens, best first
    tree = tree_from_candidates(choices, candidates)
    assert order_choices(choices) == [(0,), (1,), (0, 0), (0, 1), (1, 0)]
    assert tree.tokens == [10, 11, 20, 21, 20]
    assert tree.parents == [-1, -1, 0, 0, 1]
    assert tree_depth(choices) == 2 and tree_topk(choices) == 2


def all_nodes(accuracies):
    paths = []
    for d in range(1, len(accuracies) + 1):
        paths += itertools.product(*[range(len(a)) for a in accuracies[:d]])
    return [tuple(p) for p in paths]


def value(path, accuracies):
    return math.prod(accuracies[d][r] for d, r in enumerate(path))


@pytest.mark.parametrize("size", [1, 5, 20, 63])
def test_measured_tree_takes_the_most_likely_nodes(size):
    # falling with the rank (as trained heads' accuracies do): then the greedy tree is the set of
    # the `size` most likely nodes of all, which is closed under prefixes
    acc = [[0.55, 0.12, 0.06, 0.03], [0.35, 0.1, 0.05, 0.02], [0.25, 0.08, 0.04, 0.01]]
    tree = measured_tree(acc, size)
    assert len(tree) == size and len(set(tree)) == size and closed_under_prefixes(tree)
    best = sorted((value(p, acc) for p in all_nodes(acc)), reverse=True)[:size]
    assert [value(p, acc) for p in tree] == pytest.approx(best)
    assert expected_length(tree, acc) == pytest.approx(1 + sum(best))


def test_measured_tree_follows_the_accuracies_not_a_fixed_shape():
    # a strong first head and weak later heads: a wide, shallow tree
    wide = measured_tree([[0.5] + [0.05] * 9, [0.05] * 10, [0.05] * 10], 10)
    assert all(len(p) == 1 for p in wide)
    # confident heads: a deep chain first
    deep = measured_tree([[0.9] + [0.01] * 9] * 4, 4)
    assert deep == [(0,), (0, 0), (0, 0, 0), (0, 0, 0, 0)]
    # it never beats itself at equal budget against the default tree's expectation
    acc = [[0.6, 0.15, 0.05] + [0.01] * 7, [0.3, 0.1, 0.05] + [0.01] * 7,
           [0.2, 0.05, 0.02] + [0.01] * 7]
    for size in (8, 32):
        assert expected_length(measured_tree(acc, size), acc) >= \
            expected_length(default_tree(3, size), acc)


def test_measured_tree_is_bounded_by_the_accuracies_it_has():
    tree = measured_tree([[0.5, 0.2], [0.4, 0.1]], 100)  # 2 + 4 nodes exist
    assert len(tree) == 6 and tree_depth(tree) == 2 and tree_topk(tree) == 2
    assert measured_tree([[0.0, 0.0]], 2) == [(0,), (1,)]  # ties: smaller rank first
