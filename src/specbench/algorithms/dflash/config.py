"""DFlash's settings (``algorithm.*``), the target-layer rule and the mask-token rule:
torch-free, so composing a config loads no torch. Why each default is what it is: the comments
below and docs/dflash.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from specbench.config import AlgorithmConfig, at_least, check_draft_heads, positive, setting
from specbench.errors import UserError


class DFlashLabels(str, Enum):
    self_distill = "self_distill"  # the target's greedy token (speculators' default `ce`)
    dataset = "dataset"  # the data token (SpecForge; meant for target-regenerated data)


@dataclass
class DFlashConfig(AlgorithmConfig):
    name: str = "dflash"
    # 5: SpecForge's shipped configs, speculators' and Model-Optimizer's defaults.
    num_layers: int = setting(5, "draft decoder layers (Qwen3-style, the target's width)")
    target_layers: list[int] | None = setting(
        None, "target decoder layers whose outputs are fused (0-based, sorted, unique, below "
        "the last layer); null: num_layers ids spread evenly over 1..n-3 (z-lab's rule)")
    # 16: the released z-lab / SpecForge / speculators checkpoints ("b16").
    block_size: int = setting(16, "block = the anchor token + block_size - 1 mask tokens; one "
                              "draft forward proposes block_size - 1 tokens")
    mask_token_id: int | None = setting(
        None, "the mask token's id (its target embedding is the mask input); null: the "
        "tokenizer's mask token, else the first unused embedding row, else pad, else eos")
    # 512: SpecForge, speculators and Model-Optimizer.
    num_anchors: int = setting(512, "blocks trained per sequence and step, at most (anchors "
                               "drawn at random among the valid positions)")
    # 7.0: SpecForge's recipes, the paper's recommendation for block 16 (4 for block 8).
    loss_gamma: float | None = setting(7.0, "block position k (1..block_size-1) is weighted "
                                       "exp(-(k-1)/loss_gamma); null: unweighted")
    labels: DFlashLabels = setting(DFlashLabels.self_distill, "self_distill: the target's "
                                   "greedy token at each block position; dataset: the data's")
    intermediate_size: int | None = setting(None, "draft MLP width; null: the target's")
    num_attention_heads: int | None = setting(None, "draft attention heads; null: the target's")
    num_key_value_heads: int | None = setting(None, "draft key/value heads; null: the target's")
    num_draft: int | None = setting(None, "decoding: draft tokens per step, at most "
                                    "block_size - 1 (the block is always run whole); null: "
                                    "block_size - 1", decoding=True)

    @staticmethod
    def horizon(settings: dict) -> str:
        return f"block {settings.get('block_size', '?')}"

    def __post_init__(self):
        a = "algorithm"
        at_least(a, "num_layers", self.num_layers, 1)
        at_least(a, "block_size", self.block_size, 2, "one block is the anchor plus "
                 "block_size - 1 mask tokens, so at least one drafted token")
        at_least(a, "num_anchors", self.num_anchors, 1, "blocks trained per sequence")
        at_least(a, "mask_token_id", self.mask_token_id, 0, "leave it unset (null) to resolve "
                 "it from the target's tokenizer")
        for key in ("intermediate_size", "num_attention_heads", "num_key_value_heads"):
            at_least(a, key, getattr(self, key), 1, "leave it unset (null) for the target's")
        at_least(a, "num_draft", self.num_draft, 1, "leave it unset (null) for block_size - 1")
        if not _missing(self.num_draft, self.block_size) and \
                self.num_draft > self.block_size - 1:
            raise ValueError(f"algorithm.num_draft={self.num_draft} exceeds the "
                             f"block_size - 1 = {self.block_size - 1} tokens one block drafts "
                             "(algorithm.block_size); lower it, or leave it unset (null).")
        if not _missing(self.loss_gamma):
            positive(a, "loss_gamma", self.loss_gamma, "block position k is weighted "
                     "exp(-(k-1)/loss_gamma); null for no decay")
        if not _missing(self.target_layers):
            check_target_layers(list(self.target_layers))

    def check_target(self, model) -> None:
        arch = model.arch
        n = arch.num_hidden_layers
        if _missing(n):
            return
        if not _missing(self.target_layers):
            check_target_layers(list(self.target_layers), n, "model.arch.num_hidden_layers")
        elif n < 2:
            raise ValueError(_too_shallow(n, "model.arch.num_hidden_layers"))
        v = arch.vocab_size
        if not _missing(self.mask_token_id) and not _missing(v) and self.mask_token_id >= v:
            raise ValueError(_mask_message(self.mask_token_id, v))
        check_draft_heads(self.num_attention_heads, self.num_key_value_heads, arch)


def _missing(*values) -> bool:
    from specbench.config import _unset

    return any(_unset(v) for v in values)


LAYER_RULE = ("sorted and unique (0-based; a layer's output is fused), each below the last "
              "layer (SGLang never captures the last layer's output, and the training hook "
              "reads it before the final norm)")


def check_target_layers(layers: list[int], n: int | None = None, source: str = "") -> None:
    """``algorithm.target_layers``: at least one sorted unique id, 0 <= id < n - 1 (``n``: the
    target's decoder layers, where known). ValueError naming the setting."""
    if not layers or min(layers) < 0 or layers != sorted(set(layers)):
        raise ValueError(f"algorithm.target_layers={layers} must name at least one decoder "
                         f"layer of the target, {LAYER_RULE}; leave it unset (null) for the "
                         "default.")
    if n is not None and max(layers) >= n - 1:
        if n < 2:
            raise ValueError(_too_shallow(n, source))
        where = f" ({source}={n})" if source else ""
        raise ValueError(f"algorithm.target_layers={layers} must name layers 0..{n - 2} of "
                         f"the target's {n}{where}, {LAYER_RULE}; leave it unset (null) for "
                         "the default.")


def _too_shallow(n: int, source: str = "") -> str:
    where = f" ({source}={n})" if source else ""
    return (f"DFlash needs a target of at least 2 decoder layers, and this one has {n}{where}: "
            "it fuses the outputs of layers below the last one. Choose a deeper target "
            "(model=...).")


def _mask_message(mask_id: int, vocab: int) -> str:
    return (f"algorithm.mask_token_id={mask_id} must be below the target's vocabulary of "
            f"{vocab} tokens: the mask token's input is its row of the target's (frozen) "
            "embedding. Choose an id below it, or leave it unset (null) to resolve it from the "
            "tokenizer.")


def build_target_layer_ids(num_target_layers: int, num_draft_layers: int) -> list[int]:
    """z-lab's rule (also SpecForge's and Model-Optimizer's): one layer, [n // 2]; else
    ``num_draft_layers`` ids spread evenly over 1..n-3, rounded (Python's round), e.g. SmolLM2's
    30 layers and 5 draft layers give [1, 8, 14, 20, 27], Qwen3-8B's 36 [1, 9, 17, 25, 33].

    Where that rule gives ids that are not sorted, unique and below the last layer (shallow
    targets: the 4-layer test models give [1, 1, 1, 1, 1]), specbench spreads
    min(num_draft_layers, n - 1) ids evenly over 0..n-2 instead ([0, 1, 2] for 4 layers), so
    a shallow target fuses fewer layers than the draft has; describe() records the ids used."""
    n, k = num_target_layers, num_draft_layers
    if n < 2:
        raise UserError(_too_shallow(n, "the target's num_hidden_layers"))
    if k == 1:
        ids = [n // 2]
    else:
        start, end = 1, n - 3
        ids = [round(start + i * (end - start) / (k - 1)) for i in range(k)]
    if ids == sorted(set(ids)) and ids[0] >= 0 and ids[-1] < n - 1:
        return ids
    k = min(k, n - 1)
    if k == 1:
        return [(n - 2) // 2]
    return [i * (n - 2) // (k - 1) for i in range(k)]


def target_layers_of(cfg, target_config) -> list[int]:
    """The fused layers of a draft on this target: ``algorithm.target_layers`` (checked
    against it) or ``build_target_layer_ids``. UserError naming the setting."""
    n = target_config.num_hidden_layers
    if cfg.target_layers is None:
        return build_target_layer_ids(n, int(cfg.num_layers))
    layers = [int(i) for i in cfg.target_layers]
    try:
        check_target_layers(layers, n, "the target's num_hidden_layers")
    except ValueError as err:
        raise UserError(str(err)) from None
    return layers


def resolve_mask_token_id(cfg, tokenizer, vocab_size: int) -> int:
    """``algorithm.mask_token_id``, else SpecForge's rule: the tokenizer's mask token; else
    ``len(tokenizer)`` when it is below the embedding's rows (a row no token uses); else the
    pad token; else eos. UserError when the id is outside the target's embedding."""
    if cfg.mask_token_id is not None:
        mask_id = int(cfg.mask_token_id)
    else:
        mask_id = None
        for candidate in (getattr(tokenizer, "mask_token_id", None),
                          len(tokenizer) if len(tokenizer) < vocab_size else None,
                          tokenizer.pad_token_id, tokenizer.eos_token_id):
            if candidate is not None:
                mask_id = int(candidate)
                break
        if mask_id is None:
            raise UserError("DFlash found no mask token: the tokenizer has no mask, pad or "
                            "eos token and no unused embedding row. Set "
                            "algorithm.mask_token_id to an id below the target's "
                            f"vocabulary of {vocab_size} tokens.")
    if not 0 <= mask_id < vocab_size:
        raise UserError(_mask_message(mask_id, vocab_size))
    return mask_id


def position_weights(block_size: int, gamma: float | None) -> list[float]:
    """Loss weight of block positions 0..block_size-1: 0 for the anchor, exp(-(k-1)/gamma) for
    k >= 1 (1.0 without decay)."""
    return [0.0] + [1.0 if gamma is None else math.exp(-(k - 1) / gamma)
                    for k in range(1, block_size)]
