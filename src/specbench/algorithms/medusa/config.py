"""Medusa's settings (``algorithm.*``): torch-free, so composing a config loads no torch."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from specbench.config import AlgorithmConfig, at_least, enum_value, positive, setting


class MedusaLmHead(str, Enum):
    per_head = "per_head"
    shared = "shared"


class MedusaLabels(str, Enum):
    self_distill = "self_distill"
    dataset = "dataset"


class MedusaTreeKind(str, Enum):
    default = "default"
    measured = "measured"


@dataclass
class MedusaConfig(AlgorithmConfig):
    name: str = "medusa"
    num_heads: int = setting(4, "heads K: head k predicts the token t+2+k")
    num_layers: int = setting(1, "residual blocks per head (0: the vocabulary projection alone)")
    lm_head: MedusaLmHead = setting(MedusaLmHead.shared, "shared: the frozen target lm_head "
                                    "for every head; per_head: a trainable copy each (Medusa-1)")
    loss_decay: float = setting(0.8, "head k's loss is weighted loss_decay^k (1.0: the "
                                "original unweighted sum)")
    labels: MedusaLabels = setting(MedusaLabels.self_distill, "self_distill: the target's "
                                   "greedy tokens; dataset: the data's tokens")
    tree_choices: list[list[int]] | None = setting(None, "decoding: the static tree's paths of "
                                                   "per-head ranks, e.g. [[0],[1],[0,0]]; null: "
                                                   "the tree algorithm.tree builds",
                                                   decoding=True)
    tree: MedusaTreeKind = setting(MedusaTreeKind.default, "decoding: the static tree of "
                                   "tree_size nodes; default: a fixed heuristic; measured: "
                                   "built from the run's held-out per-rank head accuracies "
                                   "(Medusa's mc_sim construction)", decoding=True)
    tree_size: int = setting(32, "decoding: nodes of the static tree (algorithm.tree)",
                             decoding=True)

    @staticmethod
    def horizon(settings: dict) -> str:
        return f"{settings.get('num_heads', '?')} heads"

    def __post_init__(self):
        at_least("algorithm", "num_heads", self.num_heads, 1)
        at_least("algorithm", "num_layers", self.num_layers, 0,
                 "0: each head is its vocabulary projection alone")
        positive("algorithm", "loss_decay", self.loss_decay, "head k is weighted loss_decay^k; "
                 "1.0 is the original unweighted sum")
        at_least("algorithm", "tree_size", self.tree_size, 1)
        if self.tree_choices is not None and enum_value(self.tree) == "measured":
            raise ValueError("algorithm.tree=measured builds the tree from measured accuracies, "
                             "but algorithm.tree_choices also gives one. Set "
                             "algorithm.tree_choices=null, or algorithm.tree=default.")
