"""EAGLE-3's settings (``algorithm.*``) and the draft layer's transformers config derived from
the target's (also the ``config.json`` of an SGLang/vLLM export)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from specbench.config import AlgorithmConfig, at_least, check_draft_heads, positive, setting
from specbench.errors import UserError

# Default draft vocabulary by target vocabulary size: SpecForge's published drafts, and
# 8192 for SmolLM2's 49152 tokens (it covers every assistant token of the embedded set, 4,684
# distinct ids, with headroom for unseen prompts; see docs/eagle3.md). Others: min(vocab, 32000).
DEFAULT_DRAFT_VOCAB = {128256: 32000, 152064: 16000, 49152: 8192}


class Attention(str, Enum):
    auto = "auto"  # flex on CUDA, diagonal elsewhere
    diagonal = "diagonal"  # causal scores over step 0 + one score per earlier step
    flex = "flex"  # torch flex_attention with a block mask over the concatenated keys


@dataclass
class Eagle3Config(AlgorithmConfig):
    name: str = "eagle3"
    aux_layers: list[int] | None = setting(None, "the 3 target decoder layers whose outputs are "
                                           "fused (0-based); null: [1, n//2-1, n-4]")
    ttt_length: int = setting(7, "training-time-test steps unrolled per position")
    step_decay: float = setting(0.8, "TTT step k's loss is weighted step_decay^k")
    draft_vocab_size: int | None = setting(None, "tokens of the reduced draft vocabulary (the "
                                           "most frequent assistant tokens); null: 32000 for "
                                           "Llama-3, 16000 for Qwen2.5, else min(vocab, 32000)")
    attention: Attention = setting(Attention.auto, "TTT attention: diagonal (step-0 scores + "
                                   "one per earlier step), flex (flex_attention, CUDA), auto")
    intermediate_size: int | None = setting(None, "draft MLP width; null: the target's")
    num_attention_heads: int | None = setting(None, "draft attention heads; null: the target's")
    num_key_value_heads: int | None = setting(None, "draft key/value heads; null: the target's")
    # EAGLE-2's dynamic tree, named and meant as in the reference (SafeAILab/EAGLE's EaModel
    # and evaluation scripts: --top-k 10 --depth 5 --total-token 60). null: that default.
    top_k: int | None = setting(None, "decoding, EAGLE-2 dynamic tree: children expanded per "
                                "node, and nodes expanded per level; null: 10", decoding=True)
    depth: int | None = setting(None, "decoding, EAGLE-2 dynamic tree: draft steps after the "
                                "first, so depth + 1 drafted levels (EAGLE's depth); null: 5",
                                decoding=True)
    total_token: int | None = setting(None, "decoding, EAGLE-2 dynamic tree: tokens verified per "
                                      "step, the root included, so total_token - 1 draft nodes "
                                      "(best cumulative log-probability; EAGLE's total_token); "
                                      "null: 60", decoding=True)
    # The old names, with their old meanings (runs recorded before the rename carry them):
    # used only where the new setting is null, translated by tree_settings().
    tree_top_k: int | None = setting(None, "deprecated: algorithm.top_k (same meaning)",
                                     decoding=True)
    tree_depth: int | None = setting(None, "deprecated: drafted levels, "
                                     "= algorithm.depth + 1", decoding=True)
    tree_total_tokens: int | None = setting(None, "deprecated: draft nodes without the root, "
                                            "= algorithm.total_token - 1", decoding=True)

    @staticmethod
    def horizon(settings: dict) -> str:
        return f"TTT depth {settings.get('ttt_length', '?')}"

    def __post_init__(self):
        a = "algorithm"
        for key in ("ttt_length", "draft_vocab_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "top_k", "tree_top_k", "tree_depth",
                    "tree_total_tokens"):
            at_least(a, key, getattr(self, key), 1,
                     "" if key in ("ttt_length", "top_k") or key.startswith("tree_")
                     else "leave it unset (null) for the default")
        at_least(a, "depth", self.depth, 0, "EAGLE's depth: depth + 1 drafted levels")
        at_least(a, "total_token", self.total_token, 2, "EAGLE's total_token counts the root: "
                 "total_token - 1 draft nodes")
        positive(a, "step_decay", self.step_decay, "step k of training-time test is weighted "
                 "step_decay^k")
        if self.aux_layers is not None:
            check_aux_layers(list(self.aux_layers))

    def check_target(self, model) -> None:
        arch = model.arch
        n = arch.num_hidden_layers
        if self.aux_layers is not None:
            check_aux_layers(list(self.aux_layers), n, "model.arch.num_hidden_layers")
        elif n < 4:
            raise ValueError(_too_few(n, "model.arch.num_hidden_layers"))
        if self.draft_vocab_size is not None and self.draft_vocab_size > arch.vocab_size:
            raise ValueError(f"algorithm.draft_vocab_size={self.draft_vocab_size} must be at "
                             f"most the target's vocabulary, model.arch.vocab_size="
                             f"{arch.vocab_size}.")
        check_draft_heads(self.num_attention_heads, self.num_key_value_heads, arch)


AUX_RULE = ("sorted and unique (0-based; a layer's output is fused), each below the last "
            "layer: the last layer's output is read pre-norm by the training hook but "
            "post-norm by decoding, and SGLang cannot capture it")


def check_aux_layers(layers: list[int], n: int | None = None, source: str = "") -> None:
    """``algorithm.aux_layers``: 3 sorted unique ids, 0 <= id < n - 1 (``n``: the target's
    decoder layers, where known). ValueError (a config rule) naming the setting."""
    bad = len(layers) != 3 or min(layers) < 0 or layers != sorted(set(layers))
    if not bad and n is not None and max(layers) >= n - 1:
        raise ValueError(f"algorithm.aux_layers={layers} must name layers of the target, "
                         f"0..{n - 2} for its {n} layers{f' ({source}={n})' if source else ''}, "
                         f"{AUX_RULE}; leave it unset (null) for the default "
                         f"{default_aux_layers(n)}." if n >= 4 else _too_few(n, source))
    if bad:
        raise ValueError(f"algorithm.aux_layers={layers} must name 3 decoder layers of the "
                         f"target, {AUX_RULE}; leave it unset (null) for [1, n//2-1, n-4].")


def _too_few(n: int, source: str = "") -> str:
    where = f" ({source}={n})" if source else ""
    return (f"EAGLE-3 needs a target of at least 4 decoder layers, and this one has {n}{where}: "
            "algorithm.aux_layers must name 3 distinct layers below the last one. Choose a "
            "deeper target (model=...).")


def default_aux_layers(num_layers: int, source: str = "") -> list[int]:
    """SpecForge's [1, n//2-1, n-4] where those are 3 sorted unique ids below the last layer
    (n >= 7: Llama-3 8B's 32 layers give [1, 15, 28], SmolLM2's 30 [1, 14, 26]); for 4..6
    layers, the first, middle and last-but-one, [0, (n-2)//2, n-2]."""
    n = num_layers
    if n < 4:
        raise UserError(_too_few(n, source))
    spec = [1, n // 2 - 1, n - 4]
    return spec if spec == sorted(set(spec)) and spec[-1] < n - 1 else [0, (n - 2) // 2, n - 2]


def aux_layers_of(cfg, target_config) -> list[int]:
    n = target_config.num_hidden_layers
    if cfg.aux_layers is None:
        return default_aux_layers(n, "the target's num_hidden_layers")
    layers = list(cfg.aux_layers)
    try:
        check_aux_layers(layers, n, "the target's num_hidden_layers")
    except ValueError as err:
        raise UserError(str(err)) from None
    return layers


TREE_DEFAULTS = {"top_k": 10, "depth": 5, "total_token": 60}  # EAGLE's evaluation defaults


def tree_settings(cfg) -> dict:
    """The EAGLE-2 tree settings in the reference's terms (``top_k``, ``depth``: depth + 1
    drafted levels, ``total_token``: the root included), with ``source``: the key each came
    from. A null setting takes its old name's value where a run recorded one (translated:
    depth = tree_depth - 1, total_token = tree_total_tokens + 1), else the reference default."""
    legacy = {"top_k": ("tree_top_k", 0), "depth": ("tree_depth", -1),
              "total_token": ("tree_total_tokens", 1)}
    out, source = {}, {}
    for key, (old, shift) in legacy.items():
        value, src = cfg.get(key), key
        if value is None and cfg.get(old) is not None:
            value, src = int(cfg.get(old)) + shift, old
        out[key] = int(TREE_DEFAULTS[key] if value is None else value)
        source[key] = src
    return {**out, "source": source}


def draft_config(cfg, target_config, draft_vocab_size: int | None = None):
    """The draft's transformers config, derived from the target's; fields in ``cfg`` override.

    It is also the ``config.json`` of an SGLang/vLLM export."""
    from transformers import LlamaConfig

    h = target_config.hidden_size
    heads = cfg.num_attention_heads or target_config.num_attention_heads
    n_vocab = target_config.vocab_size
    dv = draft_vocab_size or cfg.draft_vocab_size or DEFAULT_DRAFT_VOCAB.get(
        n_vocab, min(n_vocab, 32000))
    if not 0 < dv <= n_vocab:
        raise UserError(f"algorithm.draft_vocab_size={dv} must be in 1..{n_vocab} (the target "
                        "vocabulary size).")
    from specbench.target import rope_theta_of  # here: the settings above import no torch

    head_dim = getattr(target_config, "head_dim", None) or h // target_config.num_attention_heads
    rope = {}
    params = getattr(target_config, "rope_parameters", None)
    if isinstance(params, dict):
        rope["rope_parameters"] = dict(params)
    scaling = getattr(target_config, "rope_scaling", None)
    c = LlamaConfig(
        hidden_size=h, intermediate_size=cfg.intermediate_size or target_config.intermediate_size,
        num_attention_heads=heads,
        num_key_value_heads=cfg.num_key_value_heads or target_config.num_key_value_heads,
        head_dim=head_dim, num_hidden_layers=1, vocab_size=n_vocab,
        rms_norm_eps=target_config.rms_norm_eps, hidden_act="silu",
        max_position_embeddings=target_config.max_position_embeddings,
        tie_word_embeddings=False, rope_theta=rope_theta_of(target_config), **rope,
    )
    if scaling is not None and not isinstance(params, dict):
        c.rope_scaling = scaling
    c.architectures = ["LlamaForCausalLMEagle3"]
    c.draft_vocab_size = dv
    c.target_hidden_size = h
    layers = aux_layers_of(cfg, target_config)
    # The two engines read the ids one layer apart: SGLang (nested eagle_config) takes the
    # *output* of layer i, as specbench and SpecForge do; vLLM (top level) captures the *input*
    # of layer i, which is the output of layer i-1.
    c.eagle_config = {"eagle_aux_hidden_state_layer_ids": list(layers),
                      "use_aux_hidden_state": True}
    c.eagle_aux_hidden_state_layer_ids = [i + 1 for i in layers]
    return c
