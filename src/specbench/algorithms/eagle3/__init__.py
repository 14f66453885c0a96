"""EAGLE-3 (Li et al. 2025): one draft decoder layer on fused multi-layer target features,
trained with training-time test (TTT).

Alignment, for tokens x_0 .. x_{L-1}:
- features: the outputs of three target decoder layers (default [1, n//2-1, n-4], the inputs of
  [2, n//2, n-3]), concatenated (3H) and projected by ``fc`` to H: f_t;
- step 0, position t: draft input = (f_t, embedding of x_{t+1}); it is trained against the
  target's distribution for x_{t+2} (the target logits at t+1), restricted to the draft vocab;
- step k (k = 0..ttt_length-1): the hidden input is the draft's own output at step k-1 (same
  position), the token input x_{t+1+k}, the target the logits at t+1+k, the RoPE position t+k;
- a pair (t, k) is trained when x_{t+2+k} is an assistant token (the same label-position rule
  as Medusa) and the target's argmax at t+1+k lies in the draft vocabulary;
- attention: a step-k query at t sees the step-0 keys at positions <= t and the step-j keys
  (1 <= j <= k) at position t only.

Parameter names follow the SGLang/vLLM ``LlamaForCausalLMEagle3`` checkpoint layout (``fc``,
``midlayer.*``, ``norm``, ``lm_head``, ``d2t``, ``t2d``); the token embedding is the target's,
frozen and not saved.

One concept per file: ``config`` (settings, the derived draft config), ``layers`` (the draft
decoder layer; one attention for training and inference), ``model`` (the draft, its TTT loss),
``proposers`` (chain and dynamic tree decoding), ``export`` (the SGLang/vLLM files).
"""

import importlib

from specbench.algorithms.eagle3.config import (
    DEFAULT_DRAFT_VOCAB,
    Attention,
    Eagle3Config,
    aux_layers_of,
    default_aux_layers,
    draft_config,
)

# the model names load on first use, so importing the settings imports no torch
_LAZY = {"DraftAttention": "layers", "DraftLayer": "layers", "RMSNorm": "layers",
         "apply_rope": "layers", "Eagle3": "model", "shift_left": "model",
         "Eagle3Chain": "proposers", "Eagle3Tree": "proposers"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"specbench.algorithms.eagle3.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_DRAFT_VOCAB", "Attention", "DraftAttention", "DraftLayer", "Eagle3",
           "Eagle3Chain", "Eagle3Config", "Eagle3Tree", "RMSNorm", "apply_rope",
           "aux_layers_of", "default_aux_layers", "draft_config", "shift_left"]
