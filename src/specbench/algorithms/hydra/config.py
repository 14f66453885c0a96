"""Hydra's settings (``algorithm.*``): torch-free, so composing a config loads no torch.

Defaults are plain Hydra (Ankner et al. 2024, the reference's ``hydra_head_arch=mlp``) with the
Hydra++ additions off, so that ``algorithm=hydra`` against ``algorithm=medusa`` differs in one
thing only: the heads' sequential dependence. Why each default is what it is: the comments
below and docs/hydra.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from specbench.config import AlgorithmConfig, at_least, positive, setting


class HydraLmHead(str, Enum):
    shared = "shared"
    per_head = "per_head"


class HydraLabels(str, Enum):
    self_distill = "self_distill"
    dataset = "dataset"


@dataclass
class HydraConfig(AlgorithmConfig):
    name: str = "hydra"
    # 4 heads: Medusa's default here and the reference's Hydra++ recipe (hydra_num_heads=4).
    num_heads: int = setting(4, "heads K: head k reads h_t and the embeddings of x_{t+1} .. "
                             "x_{t+1+k}, and predicts x_{t+2+k}")
    # 1: the reference's default (hydra_num_layers=1) and Medusa's here, so both drafts have
    # one block per head; Hydra++ uses 4.
    num_layers: int = setting(1, "residual blocks per head (>= 1; the first reads the "
                              "concatenated input)")
    # shared: as Medusa's default here (the reference trains a copy per head, with a bias).
    lm_head: HydraLmHead = setting(HydraLmHead.shared, "shared: the frozen target lm_head for "
                                   "every head; per_head: a trainable copy each")
    # self_distill: as Medusa's default here; also picks the teacher-forced input tokens.
    labels: HydraLabels = setting(HydraLabels.self_distill, "self_distill: labels and input "
                                  "tokens are the target's greedy tokens; dataset: the data's")
    # Hydra++ (off by default: each changes more than the sequential dependence, and the
    # prefix layer adds a decoder layer of compute per verified token).
    prefix_attention: bool = setting(False, "Hydra++: one decoder layer over the target's "
                                     "hidden states, whose output the heads read "
                                     "(the reference's hydra_head_arch=prefix-mlp)")
    # 1.0 / 0.0: the reference's defaults (lm_loss_weight, teacher_loss_weight); Hydra++ uses
    # 0.0 / 1.0.
    lm_loss_weight: float = setting(1.0, "weight of the cross-entropy on the hard labels")
    teacher_loss_weight: float = setting(0.0, "Hydra++: weight of the cross-entropy on the "
                                         "target's distribution (soft labels)")
    # 0.0: the reference's default (noise_alpha=0); NEFTune-style uniform noise when > 0.
    noise_alpha: float = setting(0.0, "Hydra++: training-only uniform noise of scale "
                                 "noise_alpha / sqrt(tokens * hidden) on the head inputs")
    # 1.0: the reference sums the heads unweighted (Medusa's default here is 0.8).
    loss_decay: float = setting(1.0, "head k's loss is weighted loss_decay^k (1.0: the "
                                "reference's unweighted sum)")
    tree_choices: list[list[int]] | None = setting(
        None, "decoding: the static tree's paths of per-head ranks, e.g. [[0],[1],[0,0]]; "
        "null: the default tree of tree_size nodes", decoding=True)
    tree_size: int = setting(32, "decoding: nodes of the default static tree", decoding=True)

    @staticmethod
    def horizon(settings: dict) -> str:
        return f"{settings.get('num_heads', '?')} heads"

    def __post_init__(self):
        at_least("algorithm", "num_heads", self.num_heads, 1)
        at_least("algorithm", "num_layers", self.num_layers, 1,
                 "the first block of a head reads its concatenated input")
        positive("algorithm", "loss_decay", self.loss_decay, "head k is weighted loss_decay^k; "
                 "1.0 is the reference's unweighted sum")
        at_least("algorithm", "tree_size", self.tree_size, 1)
        for key in ("lm_loss_weight", "teacher_loss_weight", "noise_alpha"):
            value = getattr(self, key)
            if not isinstance(value, str) and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"algorithm.{key}={value} must be a finite number >= 0.")
        if self.lm_loss_weight == 0 and self.teacher_loss_weight == 0:
            raise ValueError("algorithm.lm_loss_weight and algorithm.teacher_loss_weight are "
                             "both 0: the heads would have no loss. Set one of them above 0 "
                             "(Hydra++: lm_loss_weight=0 teacher_loss_weight=1).")
