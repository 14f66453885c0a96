"""DFlash (Chen et al. 2026, "DFlash: Block Diffusion for Flash Speculative Decoding"): a block
drafter conditioned on fused target features.

Alignment, for tokens x_0 .. x_{S-1} and target features f_t (the outputs of the fused target
layers after the target read x_0 .. x_t):
- context: ctx_t = hidden_norm(fc([f_t of each fused layer])), at every position, fed unchanged
  to every draft layer as keys/values (k_norm(k_proj(ctx)), v_proj(ctx); RoPE at t);
- a block anchored at a: inputs = the target's embeddings of [x_a, MASK x (block_size - 1)] at
  RoPE positions a .. a + block_size - 1;
- attention: a block query sees the context at positions < a (strictly: the target has not
  processed x_a yet when the block is drafted) and every token of its own block
  (bidirectionally), never another block;
- block index k (1 .. block_size - 1) predicts x_{a+k} (labels=dataset) or the target's greedy
  token there, argmax(lm_head(final_hidden_{a+k-1})) (labels=self_distill); index 0 is unused;
- trained where x_{a+k} is an assistant token (a + k < S), weighted exp(-(k-1)/loss_gamma);
  anchors: positions a with x_a and x_{a+1} both assistant tokens (SpecForge), at most
  num_anchors per sequence, drawn afresh each step.

Parameter names are vLLM's and SGLang's ``DFlashDraftModel`` names (``fc``, ``hidden_norm``,
``layers.{i}.*``, ``norm``); the embedding and the lm_head are the target's, frozen, not saved.

One concept per file: ``config`` (settings, layer and mask rules), ``layers`` (the draft decoder
layer; one attention for training and decoding), ``model`` (the draft, its loss),
``proposers`` (block decoding), ``export`` (the vLLM/SGLang files).
"""

import importlib

from specbench.algorithms.dflash.config import (
    DFlashConfig,
    DFlashLabels,
    build_target_layer_ids,
    resolve_mask_token_id,
    target_layers_of,
)

# the model names load on first use, so importing the settings imports no torch
_LAZY = {"DFlash": "model", "DFlashLayer": "layers", "DFlashBlock": "proposers"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"specbench.algorithms.dflash.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DFlash", "DFlashBlock", "DFlashConfig", "DFlashLabels", "DFlashLayer",
           "build_target_layer_ids", "resolve_mask_token_id", "target_layers_of"]
