"""Lookahead decoding (Fu et al. 2024): Jacobi iterations plus an n-gram pool, no draft model.

Every target forward carries three kinds of tokens (see docs/lookahead.md for the picture):

- the pending last token (the root), whose output is the target's next greedy token;
- the **verification branch**: up to GUESS cached n-grams that start with the root token, merged
  into a trie and verified like any draft tree (the decoder accepts the longest matching path);
- the **lookahead branch**: a window of WINDOW columns by LEVEL-1 levels of guessed future tokens.
  Level 0 holds the oldest guesses and starts with the root; the token at level j, column i sits
  at position root+i+j and sees the root, level-0 columns 1..i, and levels 1..j of column i, so
  each column is one Jacobi trajectory. The target's outputs at the last level become a new
  level (a Jacobi step); the oldest level is dropped.

After each forward the column trajectories give WINDOW n-grams of LEVEL tokens (old level 0..last
level plus the new output), which go into the pool keyed by their first token (at most GUESS
per key). The lookahead branch's outputs are never accepted and its cache entries are dropped, so
the output equals greedy decoding: only the verification branch can add tokens beyond the root's
own greedy token.

Two variants (``decode.lookahead.variant``, docs/lookahead.md):

- ``reference`` (the default; lade, hao-ai-lab/LookaheadDecoding ``lade/decoding.py``): warm-up
  starts with level 0 only (prompt tokens drawn at random, WINDOW+LEVEL-3 of them) and adds one
  level per step from the target's own Jacobi outputs, every level losing its first column per
  step, until LEVEL-1 levels of WINDOW columns stand; the pool and the verification branch start
  then. A pool key keeps its GUESS n-grams least-recently-used first (a repeated n-gram moves to
  the newest end). A fully matched guess commits its LEVEL-1 tokens without the bonus token.
- ``specbench`` (specbench before issue 11): every level random from the start, the pool
  collected from the first step, oldest-first eviction (a repeated n-gram keeps its place), and a
  fully matched guess keeps the bonus token.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import torch

from specbench.decoding import SideBranch, Tree
from specbench.errors import UserError

VARIANTS = ("reference", "specbench")


class Lookahead:
    """Proposer for ``speculative_generate``. ``level`` is the n-gram size N (LEVEL), ``window``
    the number of Jacobi columns W (WINDOW), ``guess`` the most n-grams verified per step
    (GUESS). Defaults are the Lookahead paper's and Spec-Bench's (5, 7, 7)."""

    name = "lookahead"

    def __init__(self, level: int = 5, window: int = 7, guess: int = 7, seed: int = 0,
                 variant: str = "reference"):
        if level < 3 or window < 1 or guess < 0:
            raise UserError(f"Lookahead needs decode.lookahead.level >= 3 (got {level}), "
                            f"decode.lookahead.window >= 1 (got {window}) and "
                            f"decode.lookahead.guess >= 0 (got {guess}).")
        if variant not in VARIANTS:
            raise UserError(f"decode.lookahead.variant={variant!r}: use one of "
                            f"{', '.join(VARIANTS)} (docs/lookahead.md).")
        self.level, self.window, self.guess, self.seed = level, window, guess, seed
        self.variant = variant
        self.pool: dict[int, OrderedDict] = {}
        self.levels: list[list[int]] = []  # level 0's column 0 is the root's place (unused)
        self._shape = None

    def _layout(self, n_levels: int, w: int) -> None:
        """The window's shape (``n_levels`` levels of ``w`` columns), rebuilt only when it
        changes: its cells (level j, column i) in input order (level 0 from column 1, the root
        being its column 0; then levels 1.. fully), each cell's offset from the root position,
        what it sees among [root, cells...], and which cells are the last level (whose outputs
        make the next level)."""
        if self._shape == (n_levels, w):
            return
        self._shape = (n_levels, w)
        self._cells = [(0, i) for i in range(1, w)] + [(j, i) for j in range(1, n_levels)
                                                        for i in range(w)]
        slot = {cell: k + 1 for k, cell in enumerate(self._cells)}  # 0 is the root
        visible = torch.zeros(len(self._cells), len(self._cells) + 1, dtype=torch.bool)
        for k, (j, i) in enumerate(self._cells):
            visible[k, 0] = True
            for c in range(1, i + 1):
                visible[k, slot[(0, c)]] = True
            for lv in range(1, j + 1):
                visible[k, slot[(lv, i)]] = True
        self._visible = visible
        self._offsets = [i + j for j, i in self._cells]
        self._last = [k for k, (j, _) in enumerate(self._cells) if j == n_levels - 1]

    def start(self, ids, out):
        # Initial guesses: tokens drawn from the prompt (deterministic); any guess is valid,
        # good ones only converge faster. The reference starts with level 0 alone, wider by
        # the LEVEL-2 columns the warm-up steps will drop.
        rng = random.Random(self.seed)
        if self.variant == "reference":
            self.levels = [[rng.choice(ids) for _ in range(self.window + self.level - 2)]]
        else:
            self.levels = [[rng.choice(ids) for _ in range(self.window)]
                           for _ in range(self.level - 1)]
        self.pool = {}

    def warming_up(self) -> bool:
        return len(self.levels) < self.level - 1

    def propose(self, ids):
        root = ids[-1]
        tree = Tree([], []) if self.warming_up() else self._verification_trie(root)
        tree.no_bonus_at_leaf = self.variant == "reference"
        tree.side = self._side_branch()
        return tree

    def _verification_trie(self, root: int) -> Tree:
        tokens, parents, index = [], [], {}
        for ngram in list(self.pool.get(root, {}))[: self.guess]:
            parent = -1
            for t in ngram:
                key = (parent, t)
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(t)
                    parents.append(parent)
                parent = index[key]
        return Tree(tokens, parents)

    def _side_branch(self) -> SideBranch:
        """The window's current guesses, laid out as ``_layout`` fixed."""
        self._layout(len(self.levels), len(self.levels[0]))
        return SideBranch([self.levels[j][i] for j, i in self._cells], self._offsets,
                          self._visible)

    def accept(self, ids, n_new, out):
        side = out.side_greedy  # greedy tokens after each side token
        if side is None:
            return
        # the last level's outputs (level 0's column 0 is the root: its output is not needed)
        last = [side[k] for k in self._last]
        new_level = last if len(self.levels) > 1 else [self.levels[0][0], *last]
        if self.warming_up():  # a new level; every level loses its first column
            self.levels = [lv[1:] for lv in (*self.levels, new_level)]
            return
        root = ids[-n_new - 1]  # the root of the step that produced these outputs
        for i in range(self.window):
            first = root if i == 0 else self.levels[0][i]
            ngram = tuple(self.levels[j][i] for j in range(1, self.level - 1)) + (new_level[i],)
            self._remember(self.pool.setdefault(first, OrderedDict()), ngram)
        # One Jacobi step: the oldest level goes, the new outputs become the last level. When
        # several tokens were accepted, the window's positions no longer line up with the new
        # root; the guesses are kept anyway (they only have to be plausible, never right).
        self.levels = self.levels[1:] + [new_level]

    def _remember(self, bucket: OrderedDict, ngram: tuple) -> None:
        """Add ``ngram`` to one key's guesses, at most GUESS of them: the reference refreshes
        a repeated n-gram and evicts the least recently used; specbench skips a repeat and
        evicts the oldest."""
        if ngram in bucket:
            if self.variant == "reference":
                bucket.move_to_end(ngram)
            return
        bucket[ngram] = None
        if len(bucket) > max(1, self.guess):
            bucket.popitem(last=False)
