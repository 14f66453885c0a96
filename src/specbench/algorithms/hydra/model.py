"""Hydra heads: the draft module, its loss, FLOP counts and decoding helpers.

See the package docstring for the alignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.base import DraftAlgorithm
from specbench.algorithms.hydra.config import HydraConfig
from specbench.algorithms.hydra.layers import PrefixLayer, head_macs, head_mlp, prefix_config
from specbench.algorithms.hydra.proposers import HydraChain, HydraTree, tree_choices
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.losses import linear_cross_entropy
from specbench.target import Features, FeatureSpec


class Hydra(DraftAlgorithm):
    name = "hydra"
    config_class = HydraConfig
    proposers = ("chain", "tree")
    export_formats = ()
    export_notes = {
        "vllm": "vLLM has no Hydra loader (its MLP speculator drafts sequentially too, but "
                "with another architecture that Hydra's weights do not map onto)",
        "sglang": "SGLang has no Hydra loader",
    }

    def __init__(self, cfg, target_config, embed_weight: torch.Tensor,
                 target_lm_head: torch.Tensor):
        super().__init__()
        self.num_heads, self.num_layers = int(cfg.num_heads), int(cfg.num_layers)
        if self.num_heads < 1 or self.num_layers < 1:
            raise UserError(f"algorithm.num_heads and algorithm.num_layers must be >= 1 (got "
                            f"{self.num_heads}, {self.num_layers}).")
        self.labels = enum_value(cfg.labels)
        self.shared = enum_value(cfg.lm_head) == "shared"
        self.lm_weight, self.teacher_weight = float(cfg.lm_loss_weight), float(
            cfg.teacher_loss_weight)
        self.noise_alpha, self.decay = float(cfg.noise_alpha), float(cfg.loss_decay)
        self.tree_choices = tree_choices(cfg, self.num_heads)
        h, v = target_config.hidden_size, target_config.vocab_size
        self.hidden_size, self.vocab_size = h, v
        self.hydra_mlp = nn.ModuleList(head_mlp(k, h, self.num_layers)
                                       for k in range(self.num_heads))
        self.prefix_embeding_layer = (PrefixLayer(prefix_config(target_config))
                                      if cfg.prefix_attention else None)
        # Frozen target tensors: the token embeddings the heads read, and the lm_head (labels,
        # soft labels, the shared projection). Neither trained nor saved.
        self.register_buffer("embed_weight", embed_weight.detach(), persistent=False)
        self.register_buffer("target_lm_head", target_lm_head.detach(), persistent=False)
        self.hydra_lm_head = None
        if not self.shared:
            self.hydra_lm_head = nn.ModuleList(nn.Linear(h, v, bias=False)
                                               for _ in range(self.num_heads))
            for head in self.hydra_lm_head:
                head.weight.data.copy_(target_lm_head.detach().float())

    # ------------------------------------------------------------------ registry interface
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        return FeatureSpec(layers=(), final_hidden=True)  # Medusa's: the final hidden state

    @classmethod
    def build(cls, cfg, target, data=None) -> Hydra:
        return cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight)

    @classmethod
    def from_state(cls, cfg, target, state: dict) -> Hydra:
        m = cls.build(cfg, target)
        m.load_trainable_state_dict(state)
        return m

    @classmethod
    def check_decode_settings(cls, cfg, vocab_size: int) -> None:
        top = max(max(p) for p in tree_choices(cfg, int(cfg.num_heads)))
        if top >= vocab_size:
            raise UserError(f"algorithm.tree_choices uses rank {top}, but the target's "
                            f"vocabulary has {vocab_size} tokens (ranks 0..{vocab_size - 1}). "
                            "Lower the ranks, or set algorithm.tree_choices=null for the "
                            "default tree.")

    def make_proposer(self, kind: str = "chain", num_draft: int | None = None,
                      choices: list[tuple[int, ...]] | None = None):
        """``chain``: head k runs on the tokens the heads before it chose (sequential
        drafting); ``tree``: the static tree of ``choices`` (default algorithm.tree_choices),
        each node's children drafted by the next head fed that node's own path."""
        if kind == "tree":
            return HydraTree(self, choices or self.tree_choices)
        return HydraChain(self, num_draft or self.num_heads)

    # ------------------------------------------------------------------------ FLOPs, facts
    def projection_flops(self) -> float:
        """Forward+backward FLOPs of one vocabulary projection (no weight grad when shared)."""
        return 2 * self.hidden_size * self.vocab_size * (2 if self.shared else 3)

    def prefix_flops(self, positions: float, context: float) -> float:
        """Forward+backward FLOPs of the prefix layer on ``positions`` rows of mean
        attention context ``context``."""
        p = self.prefix_embeding_layer
        return 6 * positions * (p.macs_per_position + 2 * p.attn_dim * context)

    def describe(self) -> dict:
        h, v = self.hidden_size, self.vocab_size
        heads = [2 * head_macs(k, h, self.num_layers) + 2 * h * v for k in range(self.num_heads)]
        details = {
            "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "head_input_sizes": [(k + 2) * h for k in range(self.num_heads)],
            "draft_forward_flops_per_token": {"per_head": heads, "chain": sum(heads)},
        }
        if self.prefix_embeding_layer is not None:
            p = self.prefix_embeding_layer
            details["draft_forward_flops_per_token"]["prefix_layer_per_verified_token"] = (
                2 * p.macs_per_position)  # plus 4 * attn_dim per cached position attended
        return details

    # ------------------------------------------------------------------------ the model
    def head_states(self, hidden: torch.Tensor, start: int = 0, cache: dict | None = None):
        """What the heads read as h_t: the target's hidden state, or (prefix_attention) the
        prefix layer's output over it."""
        if self.prefix_embeding_layer is None:
            return hidden
        return self.prefix_embeding_layer(hidden, start, cache)

    def lm_weight_of(self, k: int) -> torch.Tensor:
        return self.target_lm_head if self.shared else self.hydra_lm_head[k].weight

    def embed(self, ids: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embed_weight).to(like.dtype)

    def head_logits(self, k: int, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Head k's logits [..., V] from ``state`` [..., H] and the k+1 tokens [..., k+1]
        x_{t+1} .. x_{t+1+k} (decoding: the pending token, then the drafted ones)."""
        e = self.embed(tokens, state).flatten(-2)
        z = self.hydra_mlp[k](torch.cat([state, e], dim=-1))
        w = self.lm_weight_of(k)
        return F.linear(z, w.to(z.dtype))

    @torch.no_grad()
    def target_greedy(self, hidden: torch.Tensor, needed: torch.Tensor) -> torch.Tensor:
        """The target's greedy next token at each position where ``needed`` (else 0)."""
        out = torch.zeros(needed.shape, dtype=torch.long, device=hidden.device)
        if needed.any():
            h = hidden[needed]
            out[needed] = F.linear(h, self.target_lm_head.to(h.dtype)).argmax(-1)
        return out

    @torch.no_grad()
    def noise(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """NEFTune-style noise (the reference's): uniform in [-1, 1] times
        noise_alpha / sqrt(tokens * H), tokens = the row's unpadded length. Drawn from the
        global RNG, which the trainer seeds and checkpoints, so a resumed run draws the same."""
        b, length, h = hidden.shape
        if attention_mask is None:
            tokens = torch.full((b,), float(length), device=hidden.device)
        else:
            tokens = attention_mask.sum(-1).clamp(min=1).float()
        scale = self.noise_alpha / torch.sqrt(tokens * h)
        u = torch.rand(hidden.shape, device=hidden.device) * 2 - 1
        return (u * scale[:, None, None]).to(hidden.dtype)

    def _head_loss(self, k: int, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None):
        """Head k on its rows ``x`` [n, (k+2)H]: (loss, top-1 hits, top-5 hits)."""
        z = self.hydra_mlp[k](x)
        w = self.lm_weight_of(k)
        if soft is None:
            ce, hits1, hits5 = linear_cross_entropy(z, w, y)
            return self.lm_weight * ce, hits1, hits5
        logits = F.linear(z, w.to(z.dtype)).float()
        logp = torch.log_softmax(logits, dim=-1)
        loss = self.teacher_weight * -(soft * logp).sum(-1).mean()
        if self.lm_weight:
            loss = loss + self.lm_weight * F.nll_loss(logp, y)
        with torch.no_grad():
            rank = (logits > logits.gather(1, y[:, None])).sum(-1)
            finite = torch.isfinite(logits).all(-1)
            hits1, hits5 = ((rank == 0) & finite).sum(), ((rank < 5) & finite).sum()
        return loss, hits1, hits5

    @torch.no_grad()
    def _soft_labels(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.softmax(F.linear(hidden, self.target_lm_head.to(hidden.dtype)).float(), -1)

    def loss(self, features: Features, batch: dict[str, torch.Tensor]):
        """Head k at t: input [s_t, e(tok_{t+1}), .., e(tok_{t+1+k})], label tok_{t+2+k}, where
        s is the head state (``head_states``) and tok the data (labels=dataset) or, at p, the
        target's greedy token at p-1 (self_distill). Trained where x_{t+2+k} is an assistant
        token. Per head: the mean over its rows; heads summed with weight loss_decay^k."""
        hidden = features.final_hidden
        ids, mask = batch["input_ids"], batch["loss_mask"].bool()
        b, length = ids.shape
        flops = 0.0
        if self.labels == "self_distill":
            # greedy at p stands for x_{p+1}: an input or label of a trained pair when one of
            # x_{p+1} .. x_{p+1+K} is trained.
            needed = torch.zeros_like(mask)
            for j in range(1, self.num_heads + 2):
                needed[:, : max(0, length - j)] |= mask[:, j:]
            tok = torch.zeros_like(ids)
            tok[:, 1:] = self.target_greedy(hidden, needed)[:, :-1]
            flops += float(needed.sum()) * 2 * self.hidden_size * self.vocab_size
        else:
            tok = ids
        states = self.head_states(hidden)
        embeds = self.embed(tok, states)
        if self.training and self.noise_alpha > 0:
            noise = self.noise(hidden, batch.get("attention_mask"))
            embeds = embeds + noise
            if self.prefix_embeding_layer is None:  # the reference noises h only without it
                states = states + noise
        if self.prefix_embeding_layer is not None:
            flops += self.prefix_flops(ids.numel(), length / 2)
        total = hidden.new_zeros((), dtype=torch.float32)
        counters = {}
        for k in range(self.num_heads):
            span = length - 2 - k
            if span <= 0:
                break
            valid = mask[:, 2 + k:]  # x_{t+2+k} is an assistant token, t in [0, span)
            n = int(valid.sum())
            if n == 0:
                continue
            x = torch.cat([states[:, :span]] + [embeds[:, 1 + j: 1 + j + span]
                                                for j in range(k + 1)], dim=-1)[valid]
            y = tok[:, 2 + k:][valid]
            soft = None
            if self.teacher_weight > 0:  # the target's distribution of x_{t+2+k}, at t+1+k
                soft = self._soft_labels(hidden[:, 1 + k: 1 + k + span][valid])
                flops += n * 2 * self.hidden_size * self.vocab_size
            loss_k, hits1, hits5 = self._head_loss(k, x, y, soft)
            total = total + (self.decay ** k) * loss_k
            count = torch.tensor(float(n))
            counters[f"top1/{k}"] = (hits1.float(), count)
            counters[f"top5/{k}"] = (hits5.float(), count)
            counters[f"loss/{k}"] = (loss_k.detach() * n, count)
            flops += n * (6 * head_macs(k, self.hidden_size, self.num_layers)
                          + self.projection_flops())
        tokens = batch["attention_mask"].sum() if "attention_mask" in batch else ids.numel()
        counters["draft_flops"] = (torch.tensor(flops), torch.as_tensor(tokens).float())
        return total, counters
