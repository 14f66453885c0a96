"""The DFlash draft: ``fc`` + ``hidden_norm`` over the fused target layers (the context),
``num_layers`` Qwen3-style block layers, the final ``norm`` and the target's frozen lm_head; its
anchor sampler, its block loss and FLOP count. See the package docstring for the alignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.base import DraftAlgorithm
from specbench.algorithms.dflash import export
from specbench.algorithms.dflash.config import (
    DFlashConfig,
    _mask_message,
    position_weights,
    resolve_mask_token_id,
    target_layers_of,
)
from specbench.algorithms.dflash.layers import DFlashLayer, draft_config, layer_macs
from specbench.algorithms.dflash.proposers import DFlashBlock
from specbench.algorithms.eagle3.layers import RMSNorm
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.losses import CHUNK_ROWS, chunked_cross_entropy
from specbench.target import Features, FeatureSpec


class DFlash(DraftAlgorithm):
    name = "dflash"
    config_class = DFlashConfig
    proposers = ("block",)
    export_formats = ("vllm", "sglang")  # the same files: the z-lab layout both load

    def __init__(self, cfg, target_config, embed_weight: torch.Tensor,
                 target_lm_head: torch.Tensor, mask_token_id: int,
                 mask_token: str | None = None):
        super().__init__()
        c = draft_config(cfg, target_config)
        self.draft_cfg = c
        self.target_layers = target_layers_of(cfg, target_config)
        self.num_target_layers = int(target_config.num_hidden_layers)
        self.block_size = int(cfg.block_size)  # ranges: DFlashConfig.__post_init__
        self.num_anchors = int(cfg.num_anchors)
        self.loss_gamma = None if cfg.loss_gamma is None else float(cfg.loss_gamma)
        self.labels = enum_value(cfg.labels)
        self.num_draft = int(cfg.num_draft or self.block_size - 1)
        self.mask_token_id, self.mask_token = int(mask_token_id), mask_token
        h = c.hidden_size
        self.fc = nn.Linear(len(self.target_layers) * h, h, bias=False)
        self.hidden_norm = RMSNorm(h, c.rms_norm_eps)
        self.layers = nn.ModuleList(DFlashLayer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(h, c.rms_norm_eps)
        # Frozen target tensors: the block's input embeddings and the output projection.
        self.register_buffer("embed_weight", embed_weight.detach(), persistent=False)
        self.register_buffer("target_lm_head", target_lm_head.detach(), persistent=False)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.rotary = LlamaRotaryEmbedding(config=c)

    # ------------------------------------------------------------------ registry interface
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        # final_hidden for the self_distill labels; asked for with either labels setting so
        # that both share one feature cache
        return FeatureSpec(layers=tuple(target_layers_of(cfg, target_config)), final_hidden=True)

    @classmethod
    def build(cls, cfg, target, data=None) -> DFlash:
        tok, vocab = target.tokenizer, target.config.vocab_size
        mask_id = resolve_mask_token_id(cfg, tok, vocab)
        token = tok.convert_ids_to_tokens(mask_id) if mask_id < len(tok) else None
        return cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight,
                   mask_id, token)

    @classmethod
    def from_state(cls, cfg, target, state: dict) -> DFlash:
        m = cls.build(cfg, target)
        m.load_trainable_state_dict(state)
        return m

    @classmethod
    def check_decode_settings(cls, cfg, vocab_size: int) -> None:
        if cfg.mask_token_id is not None and not 0 <= int(cfg.mask_token_id) < vocab_size:
            raise UserError(_mask_message(int(cfg.mask_token_id), vocab_size))

    def make_proposer(self, kind: str = "block", num_draft: int | None = None):
        """One draft forward over [pending token, MASK x (block_size - 1)] proposes the
        first ``num_draft`` (default algorithm.num_draft, else block_size - 1) of its
        block_size - 1 tokens, verified as a chain."""
        k = int(num_draft or self.num_draft)
        if not 1 <= k <= self.block_size - 1:
            raise UserError(f"algorithm.num_draft={k} must be in 1..{self.block_size - 1} "
                            "(block_size - 1, the tokens one block drafts).")
        return DFlashBlock(self, k)

    def serving_config(self) -> dict:
        """config.json of a vLLM/SGLang export (written next to the checkpoints)."""
        from specbench.target import rope_theta_of

        c = self.draft_cfg
        return export.serving_config(
            hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
            rms_norm_eps=c.rms_norm_eps, max_position_embeddings=c.max_position_embeddings,
            vocab_size=c.vocab_size, rope_theta=rope_theta_of(c),
            rope_parameters=getattr(c, "rope_parameters", None),
            target_layers=self.target_layers, num_target_layers=self.num_target_layers,
            block_size=self.block_size, mask_token_id=self.mask_token_id,
            mask_token=self.mask_token)

    @classmethod
    def export_files(cls, fmt, run_dir, cfg, state, dtype, load_target):
        return export.export_files(run_dir, state, dtype)

    @classmethod
    def serving_commands(cls, fmt, export_dir, cfg) -> list[str]:
        return export.serving_commands(fmt, export_dir, cfg)

    def describe(self) -> dict:
        c = self.draft_cfg
        return {"target_layers": list(self.target_layers),
                "num_target_layers": self.num_target_layers, "block_size": self.block_size,
                "mask_token_id": self.mask_token_id, "mask_token": self.mask_token,
                "num_anchors": self.num_anchors, "labels": self.labels,
                "loss_gamma": self.loss_gamma,
                "draft_config": {k: getattr(c, k) for k in (
                    "hidden_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "num_hidden_layers", "rms_norm_eps")}}

    # ------------------------------------------------------------------------ the model
    def context(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """hidden_norm(fc(concatenated fused-layer outputs)) [b, S, H]."""
        return self.hidden_norm(self.fc(torch.cat(feats, dim=-1)))

    def context_kv(self, ctx: torch.Tensor, start: int = 0) -> list:
        """Every layer's context (k, v) [b, kv_heads, S, d] at RoPE positions start.."""
        pos = torch.arange(start, start + ctx.shape[1], device=ctx.device)[None]
        cos, sin = self.rotary(ctx, pos)
        return [layer.self_attn.key_value(ctx, cos[:, None], sin[:, None])
                for layer in self.layers]

    def block_hidden(self, ctx_kv: list, block_ids: torch.Tensor, anchors: torch.Tensor,
                     dtype: torch.dtype) -> torch.Tensor:
        """The draft's normed output [b, N, B, H] for blocks ``block_ids`` [b, N, B] anchored
        at ``anchors`` [b, N] (RoPE a .. a+B-1; context keys < a visible)."""
        b, n, block = block_ids.shape
        x = F.embedding(block_ids.view(b, n * block), self.embed_weight).to(dtype)
        pos = (anchors[..., None] + torch.arange(block, device=x.device)).view(b, n * block)
        cos, sin = self.rotary(x, pos)
        for layer, kv in zip(self.layers, ctx_kv):
            x = layer(x, cos[:, None], sin[:, None], kv, anchors, block)
        return self.norm(x).view(b, n, block, -1)

    def block_inputs(self, ids: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """[b, N, B] token ids of each block: the anchor token x_a, then mask tokens."""
        blk = torch.full(anchors.shape + (self.block_size,), self.mask_token_id,
                         dtype=torch.long, device=ids.device)
        blk[..., 0] = ids.gather(1, anchors)
        return blk

    def sample_anchors(self, loss_mask: torch.Tensor):
        """Anchors [b, N] (sorted, 0-padded) and keep [b, N]: positions a with x_a and x_{a+1}
        both assistant tokens; at most num_anchors per sequence. Training: a uniform random
        subset, drawn from the global CPU RNG (checkpointed by the trainer); eval mode: all,
        or num_anchors evenly spaced, so held-out metrics need no RNG."""
        mask = loss_mask.bool().cpu()
        valid = mask[:, :-1] & mask[:, 1:]
        rows = []
        for r in range(mask.shape[0]):
            pos = valid[r].nonzero().flatten()
            n = min(self.num_anchors, pos.numel())
            if self.training:
                pick = torch.randperm(pos.numel())[:n].sort().values
            elif n < pos.numel():
                pick = torch.arange(n) * (pos.numel() - 1) // max(n - 1, 1)
            else:
                pick = torch.arange(n)
            rows.append(pos[pick])
        width = max((r.numel() for r in rows), default=0)
        anchors = torch.zeros(mask.shape[0], width, dtype=torch.long)
        keep = torch.zeros(mask.shape[0], width, dtype=torch.bool)
        for r, a in enumerate(rows):
            anchors[r, : a.numel()], keep[r, : a.numel()] = a, True
        return anchors.to(loss_mask.device), keep.to(loss_mask.device)

    @torch.no_grad()
    def target_greedy(self, hidden: torch.Tensor, needed: torch.Tensor) -> torch.Tensor:
        """The target's greedy next token at each position where ``needed`` (else 0)."""
        out = torch.zeros(needed.shape, dtype=torch.long, device=hidden.device)
        h = hidden[needed]
        w = self.target_lm_head.to(h.dtype)
        picks = [F.linear(h[i: i + CHUNK_ROWS], w).argmax(-1)
                 for i in range(0, h.shape[0], CHUNK_ROWS)]
        if picks:
            out[needed] = torch.cat(picks)
        return out

    def block_labels(self, features: Features, ids, mask, anchors, keep):
        """Labels [b, N, B] and weights [b, N, B] (0 where not trained) of each block
        position; plus the positions whose target logits were computed (self_distill)."""
        b, length = ids.shape
        block = self.block_size
        k = torch.arange(block, device=ids.device)
        pos = anchors[..., None] + k  # [b, N, B]: block index k predicts x_{a+k}
        inside = pos < length
        flat = pos.clamp(max=length - 1).view(b, -1)
        needed = torch.zeros_like(mask)
        if self.labels == "self_distill":  # x_{p+1}'s label: the target's greedy token at p
            needed[:, :-1] = mask[:, 1:]
            tok = torch.zeros_like(ids)
            tok[:, 1:] = self.target_greedy(features.final_hidden, needed)[:, :-1]
        else:
            tok = ids
        labels = tok.gather(1, flat).view(pos.shape)
        trained = mask.gather(1, flat).view(pos.shape) & inside & keep[..., None] & (k >= 1)
        decay = torch.tensor(position_weights(block, self.loss_gamma), device=ids.device)
        return labels, trained * decay, needed

    def loss(self, features: Features, batch: dict[str, torch.Tensor]):
        """Sum over trained block positions of weight x cross-entropy (fp32), divided by the
        sum of the weights (SpecForge's normalisation)."""
        ids, mask = batch["input_ids"], batch["loss_mask"].bool()
        anchors, keep = self.sample_anchors(mask)
        labels, weights, needed = self.block_labels(features, ids, mask, anchors, keep)
        ctx = self.context([features.layers[i] for i in self.target_layers])
        sel = weights > 0
        counters: dict = {}
        total = ctx.new_zeros((), dtype=torch.float32)
        if anchors.shape[1]:
            hidden = self.block_hidden(self.context_kv(ctx), self.block_inputs(ids, anchors),
                                       anchors, ctx.dtype)
            ce, hits = chunked_cross_entropy(hidden[sel], self.target_lm_head, labels[sel])
            w = weights[sel]
            if w.numel():
                total = (w * ce).sum() / w.sum()
                self._position_counters(counters, ce.detach(), hits, sel)
        if not total.requires_grad and torch.is_grad_enabled():  # nothing to train here
            total = total + sum(p.sum() for p in self.parameters()) * 0.0
        tokens = batch["attention_mask"].sum() if "attention_mask" in batch else ids.numel()
        flops = self.flops(ids.shape, anchors, int(sel.sum()), int(needed.sum()))
        counters["draft_flops"] = (torch.tensor(flops), torch.as_tensor(tokens).float())
        return total, counters

    def _position_counters(self, counters: dict, ce, hits, sel) -> None:
        """top1/{k-1} and loss/{k-1} for block positions k = 1..B-1: over the trained
        positions, unweighted."""
        k_of = torch.arange(self.block_size, device=sel.device).expand(sel.shape)[sel]
        for k in range(1, self.block_size):
            at = k_of == k
            n = int(at.sum())
            if n == 0:
                continue
            count = torch.tensor(float(n))
            counters[f"top1/{k - 1}"] = (hits[at].sum().float().cpu(), count)
            counters[f"loss/{k - 1}"] = (ce[at].sum().cpu(), count)

    def flops(self, shape, anchors: torch.Tensor, trained: int, target_logits: int) -> float:
        """Analytic forward+backward FLOPs (3 x forward; a MAC is 2 FLOPs): fc and every
        layer's context K/V at every position; every layer at every block token, attending
        its anchor's context plus its block; the lm_head at the trained positions (forward
        and the input gradient: it is frozen); the target logits of self_distill labels
        (forward only)."""
        c = self.draft_cfg
        h, d, kv = c.hidden_size, c.head_dim, c.num_key_value_heads
        positions = shape[0] * shape[1]
        layers = len(self.layers)
        ctx_macs = positions * (len(self.target_layers) * h * h + layers * 2 * h * kv * d)
        block = self.block_size
        contexts = float((anchors + block).sum())
        block_macs = layers * block * (anchors.numel() * layer_macs(c, 0)
                                       + 2 * c.num_attention_heads * d * contexts)
        flops = 6 * (ctx_macs + block_macs) + trained * 4 * h * c.vocab_size
        if self.labels == "self_distill":
            flops += target_logits * 2 * h * c.vocab_size
        return float(flops)
