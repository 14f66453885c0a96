"""Hydra (Ankner et al. 2024): Medusa-style heads on the target's last hidden state whose head k
also reads the embeddings of the tokens before its own, so the heads are sequentially dependent.

Alignment, for a sequence x_0 .. x_{L-1} and the target's normed last hidden state h_t:
- the target's own lm_head on h_t predicts x_{t+1};
- head k (k = 0..K-1) reads [h_t, e(x_{t+1}), .., e(x_{t+1+k})] and predicts x_{t+2+k}.
e is the frozen target embedding. Under training the tokens are teacher-forced: the data's
(``labels=dataset``) or the target's greedy tokens (``labels=self_distill``: token p is the
target's greedy prediction at p-1), and the labels come from the same sequence. In decoding
x_{t+1} is the pending token (the target's own) and the rest are the heads' drafts. A pair
(t, k) is trained only when x_{t+2+k} is an assistant token.

A head is the reference's MLP: a residual block over its (k+2)H-wide input
(res_connection(x) + SiLU(linear(x)), ``linear`` zero at init), then ``num_layers - 1``
independent H-wide blocks, then the vocabulary projection (the frozen target lm_head shared,
or a trainable copy per head). Hydra++ options: ``prefix_attention`` (a decoder layer over the
hidden states, read instead of h_t), ``teacher_loss_weight`` (soft labels), ``noise_alpha``.
Parameter names follow the reference (``hydra_mlp.{k}.{j}``, ``hydra_lm_head.{k}``,
``prefix_embeding_layer``). No serving engine loads Hydra, so there is no export.

Files: ``config`` (settings; torch-free), ``layers`` (head MLP, prefix layer), ``model``
(the draft and its loss), ``proposers`` (chain, static tree). The model names load on first
use, so importing the settings imports no torch.
"""

from __future__ import annotations

import importlib

from specbench.algorithms.hydra.config import HydraConfig, HydraLabels, HydraLmHead

_LAZY = {"Hydra": "model", "HydraChain": "proposers", "HydraTree": "proposers",
         "tree_choices": "proposers", "ResBlock": "layers", "PrefixLayer": "layers",
         "head_mlp": "layers", "head_macs": "layers"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"specbench.algorithms.hydra.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HydraConfig", "HydraLabels", "HydraLmHead", *sorted(_LAZY)]
