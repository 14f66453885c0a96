"""The contract every draft algorithm follows: a thin ``nn.Module`` base class with defaults.

Everything algorithm-specific lives on the class, so the trainer, ``evaluate.py``,
``export.py`` and ``compare`` name no algorithm. Required (no default):

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
- ``from_state(cfg, target, state)``: rebuild a trained draft from its saved tensors;
- ``make_proposer(kind, **options)``: a proposer for the lossless decoder (``decoding.py``), for
  each ``kind`` in ``proposers`` (see docs/adding-an-algorithm.md, section 9).

With defaults (override where the algorithm needs to):

- ``proposers``: the proposer kinds it supports, declared (``chain``, ``tree``, ``block``); the
  evaluation decodes with each, as method ``<name>_<kind>``;
- ``trainable_state_dict()`` / ``load_trainable_state_dict(sd)``: exactly the trained tensors
  (saved as safetensors; frozen tensors borrowed from the target are not saved). Default: the
  module's ``state_dict`` (non-persistent buffers excluded), loaded strictly;
- ``describe()``: derived facts recorded as ``summary.json`` -> ``algorithm_details`` (``{}``);
- ``calibrate(heldout)``: decoding settings derived from the run's own held-out metrics (for
  example a static tree built from measured per-rank accuracies), called before decoding;
- ``serving_config()``: a dict the trainer writes as ``RUN_DIR/draft_config.json`` at start-up,
  for an export that needs facts only the built draft knows; ``None`` (the default): no file;
- ``export_formats`` / ``export_notes`` / ``export_files(...)``: the serving formats it exports
  to, why it does not export to another one, and the files of one export;
- ``serving_commands(fmt, export_dir, cfg)``: the engine versions and exact serve command
  for an export, printed by the exporter;
- ``check_decode_settings(cfg, vocab_size)``: refuse decoding settings the target's vocabulary
  cannot serve, right after the target loads and before training (default: nothing to check).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from specbench.target import Features, FeatureSpec

Counters = dict[str, tuple[torch.Tensor, torch.Tensor]]
PROPOSER_KINDS = ("chain", "tree", "block")


class DraftAlgorithm(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type]
    proposers: ClassVar[tuple[str, ...]] = ("chain",)
    export_formats: ClassVar[tuple[str, ...]] = ()
    # format -> why this algorithm has no export to it (the refusal names it)
    export_notes: ClassVar[dict[str, str]] = {}

    # ---------------------------------------------------------------- required
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        raise NotImplementedError

    @classmethod
    def build(cls, cfg, target, data=None) -> DraftAlgorithm:
        raise NotImplementedError

    def loss(self, features: Features, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, Counters]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, cfg, target, state: dict[str, torch.Tensor]) -> DraftAlgorithm:
        raise NotImplementedError

    def make_proposer(self, kind: str = "chain", **options):
        """A proposer (``start`` / ``propose`` / ``accept``) of ``kind``, one of
        ``proposers``; ``options`` override the algorithm's decoding settings."""
        raise NotImplementedError

    # ---------------------------------------------------------------- defaults
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state_dict())

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)

    def describe(self) -> dict:
        return {}

    def serving_config(self) -> dict | None:
        return None

    def calibrate(self, heldout: dict[str, float]) -> None:
        """Decoding settings derived from the run's own held-out metrics (every counter of
        ``loss`` on the held-out split at the end of training, by name, as ``summary.json``
        records them under ``eval_split.metrics``). ``evaluate`` calls it once, before making
        any proposer; ``{}`` for a run recorded without them. Default: nothing to derive."""

    @classmethod
    def check_decode_settings(cls, cfg, vocab_size: int) -> None:
        """``cfg``: the ``algorithm`` config; raise ``UserError`` on settings the target's
        vocabulary of ``vocab_size`` tokens cannot serve."""

    @classmethod
    def export_files(cls, fmt: str, run_dir: Path, cfg, state: dict[str, torch.Tensor],
                     dtype: torch.dtype, load_target: Callable[[], Any]
                     ) -> tuple[dict, dict[str, torch.Tensor]]:
        """The engine's ``config.json`` (a dict) and the tensors of ``model.safetensors`` for
        ``fmt`` (one of ``export_formats``). ``cfg``: the run's resolved config; ``state``: the
        trained tensors as ``trainable_state_dict`` saved them; ``dtype``: for floating tensors
        (``cast``); ``load_target()``: the run's target, for frozen tensors the run did not
        save."""
        raise NotImplementedError


    @classmethod
    def serving_commands(cls, fmt: str, export_dir: Path, cfg) -> list[str]:
        """How to serve an export of ``fmt`` written to ``export_dir`` (``cfg``: the run's
        resolved config): lines naming the engine, the versions known to load it and the exact
        command. ``python -m specbench.export`` prints them. Default: none."""
        return []


def cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors to ``dtype``; integer and bool tensors kept (an export's tensors)."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
            for k, v in tensors.items()}


def tau_sim(top1: list[float]) -> float:
    """Expected accepted length of a chain draft from per-position accuracies:
    1 + sum_k prod_{j<=k} acc_j (the bonus token counts as 1)."""
    total, running = 1.0, 1.0
    for acc in top1:
        running *= acc
        total += running
    return total
