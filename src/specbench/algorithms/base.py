"""The interface every draft algorithm implements (a Protocol, not a base class to inherit).

An algorithm is an ``nn.Module`` class with:

- ``name`` and ``config_class``: its registry key and its structured-config dataclass (whose
  fields are everything a user may set under ``algorithm.``);
- ``feature_spec(cfg, target_config)``: which target tensors it trains on (decoder-layer outputs,
  the final normed hidden state); the trainer runs the frozen target once per batch to get them;
- ``build(cfg, target, data)``: construct the draft from the target (its config, and frozen
  weights such as the lm_head or the embedding, which it may share but must not train) and the
  training data (``ChatDataset``; EAGLE-3 derives its draft vocabulary from it);
- ``loss(features, batch)``: the training loss and metric counters for one micro batch. Counters
  are ``name -> (numerator, denominator)`` tensors; the trainer sums both over batches and logs
  the ratio. Per-position top-1 accuracy must be named ``top1/{k}`` (k = 0 is the first drafted
  token), so that tau_sim is computed the same way for every algorithm; ``draft_flops`` is
  (analytic forward+backward FLOPs of the draft on this batch, tokens in the batch), which the
  trainer sums into the run's training FLOPs and the benchmark turns into a FLOP rate;
- ``trainable_state_dict()`` / ``load_trainable_state_dict(sd)``: exactly the trained tensors
  (saved as safetensors; frozen tensors borrowed from the target are not saved);
- ``from_state(cfg, target, state)``: rebuild a trained draft from its saved tensors;
- ``proposer(num_draft=None, tree=False)``: a chain (or tree) proposer for the lossless decoder
  (``decoding.py``; see docs/adding-an-algorithm.md, section 9);
- optionally ``describe()``: derived facts worth recording in ``summary.json`` (EAGLE-3: the
  draft vocabulary size and coverage, the aux layers, the derived draft config).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from specbench.target import Features, FeatureSpec

Counters = dict[str, tuple[torch.Tensor, torch.Tensor]]


@runtime_checkable
class DraftAlgorithm(Protocol):
    name: ClassVar[str]
    config_class: ClassVar[type]

    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec: ...

    @classmethod
    def build(cls, cfg, target, data=None) -> DraftAlgorithm: ...

    def loss(self, features: Features, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, Counters]: ...

    def trainable_state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    @classmethod
    def from_state(cls, cfg, target, state: dict[str, torch.Tensor]) -> DraftAlgorithm: ...

    def proposer(self, num_draft: int | None = None, tree: bool = False): ...



def tau_sim(top1: list[float]) -> float:
    """Expected accepted length of a chain draft from per-position accuracies:
    1 + sum_k prod_{j<=k} acc_j (the bonus token counts as 1)."""
    total, running = 1.0, 1.0
    for acc in top1:
        running *= acc
        total += running
    return total
