"""Medusa (Cai et al. 2024): K extra decoding heads on the target's last hidden state.

Alignment, for a sequence x_0 .. x_{L-1} and the target's normed last hidden state h_t:
- the target's own lm_head on h_t predicts x_{t+1};
- head k (k = 0..K-1) on h_t predicts x_{t+2+k}.
With ``labels=self_distill`` the label of head k at t is the target's greedy token at position
t+1+k (what the target predicts for x_{t+2+k} given the true prefix); with ``labels=dataset`` it
is x_{t+2+k} itself. A pair (t, k) is trained only when x_{t+2+k} is an assistant token.

A head is ``num_layers`` independent residual blocks x + SiLU(W x + b), with W and b zero at
init (so a block starts as the identity), then a vocabulary projection: a trainable copy of the
target lm_head per head (``lm_head=per_head``, Medusa-1) or the frozen target lm_head shared by
every head (``lm_head=shared``). Parameter names follow vLLM's MedusaModel
(``blocks.{k}.layers.{j}``, ``lm_heads.{k}``).

Decoding: a top-1 ``chain`` of the heads, or a static ``tree`` of per-head ranks
(``specbench.static_tree``): ``algorithm.tree=default`` (a fixed heuristic) or ``measured`` (built
from the run's held-out per-rank head accuracies, the ``rank{r}/{k}`` counters of the held-out
pass, as the reference builds ``mc_sim_7b_63``), both of ``algorithm.tree_size`` nodes.

One concept per file: ``config`` (settings; torch-free), ``model`` (the heads, their loss, the
chain and static-tree proposers, the vLLM export). The model names load on first use, so
importing the settings imports no torch.
"""

from __future__ import annotations

import importlib

from specbench.algorithms.medusa.config import (
    MedusaConfig,
    MedusaLabels,
    MedusaLmHead,
    MedusaTreeKind,
)
from specbench.static_tree import default_tree  # torch-free; Medusa's default static tree

_MODEL_NAMES = {"Medusa", "MedusaChain", "MedusaTree", "ResidualStack", "_tree_choices"}


def __getattr__(name: str):
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module("specbench.algorithms.medusa.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MedusaConfig", "MedusaLabels", "MedusaLmHead", "MedusaTreeKind", "default_tree",
           *sorted(_MODEL_NAMES)]
