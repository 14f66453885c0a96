"""Medusa heads: the draft module, its loss and its proposers (chain, static tree).

See the package docstring for the alignment."""

from __future__ import annotations

import json
import shlex

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.base import DraftAlgorithm, cast
from specbench.algorithms.medusa.config import MedusaConfig
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.log import get_logger
from specbench.losses import linear_cross_entropy
from specbench.static_tree import (
    checked_choices,
    measured_tree,
    order_choices,
    tree_depth,
    tree_from_candidates,
    tree_topk,
)
from specbench.target import Features, FeatureSpec

log = get_logger(__name__)
RANKS = 10  # held-out counters rank{r}/{k} for r < RANKS: the ranks a measured tree may use


class ResidualStack(nn.Module):
    """``num_layers`` independent blocks x <- x + SiLU(W x + b)."""

    def __init__(self, hidden: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_layers))
        for layer in self.layers:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + F.silu(layer(x))
        return x



class Medusa(DraftAlgorithm):
    name = "medusa"
    config_class = MedusaConfig
    proposers = ("chain", "tree")
    export_formats = ("vllm",)
    export_notes = {"sglang": "SGLang has no Medusa support"}

    def __init__(self, cfg, hidden_size: int, vocab_size: int, target_lm_head: torch.Tensor):
        super().__init__()
        if cfg.num_heads < 1 or cfg.num_layers < 0:
            raise UserError(f"algorithm.num_heads must be >= 1 and algorithm.num_layers >= 0 "
                            f"(got {cfg.num_heads}, {cfg.num_layers}).")
        self.num_heads = cfg.num_heads
        self.num_layers = cfg.num_layers
        self.decay = float(cfg.loss_decay)
        self.labels = enum_value(cfg.labels)
        self.shared = enum_value(cfg.lm_head) == "shared"
        self.hidden_size, self.vocab_size = hidden_size, vocab_size
        self.tree_kind = "choices" if cfg.tree_choices is not None else enum_value(cfg.tree)
        self.tree_size = int(cfg.tree_size)
        self.tree_choices = _tree_choices(cfg, self.num_heads)
        self.rank_accuracy: list[list[float]] | None = None  # set by calibrate
        self.blocks = nn.ModuleList(ResidualStack(hidden_size, cfg.num_layers)
                                    for _ in range(cfg.num_heads))
        # The target's lm_head, frozen: labels for self-distillation, and the shared projection.
        self.register_buffer("target_lm_head", target_lm_head.detach(), persistent=False)
        if self.shared:
            self.lm_heads = None
        else:
            self.lm_heads = nn.ModuleList(nn.Linear(hidden_size, vocab_size, bias=False)
                                          for _ in range(cfg.num_heads))
            for head in self.lm_heads:
                head.weight.data.copy_(target_lm_head.detach().float())

    # ------------------------------------------------------------------ registry interface
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        return FeatureSpec(layers=(), final_hidden=True)

    @classmethod
    def build(cls, cfg, target, data=None) -> Medusa:
        return cls(cfg, target.config.hidden_size, target.config.vocab_size,
                   target.lm_head.weight)

    @classmethod
    def from_state(cls, cfg, target, state: dict) -> Medusa:
        """A trained draft from its saved tensors (evaluation, export checks)."""
        m = cls.build(cfg, target)
        m.load_trainable_state_dict(state)
        return m

    def position_flops(self) -> float:
        """Forward+backward FLOPs of one head at one trained position."""
        h, v = self.hidden_size, self.vocab_size
        blocks = 2 * h * h * self.num_layers * 3  # forward, input grad, weight grad
        proj = 2 * h * v * (2 if self.shared else 3)  # no weight grad when shared
        return blocks + proj

    def make_proposer(self, kind: str = "chain", num_draft: int | None = None,
                      choices: list[tuple[int, ...]] | None = None):
        """Drafting for the lossless decoder: the top-1 token of each head (``chain``), or a
        static ``tree`` of top-k candidates per head (``choices``: paths of per-head ranks;
        default ``algorithm.tree_choices``)."""
        if kind == "tree":
            if choices:
                return MedusaTree(self, choices, "choices")
            tree = "measured" if self.tree_kind == "measured" and self.rank_accuracy else \
                ("choices" if self.tree_kind == "choices" else "default")
            return MedusaTree(self, self.tree_choices, tree)
        return MedusaChain(self, num_draft or self.num_heads)

    def calibrate(self, heldout: dict[str, float]) -> None:
        """Keep the held-out per-rank head accuracies (``rank{r}/{k}``); with
        ``algorithm.tree=measured`` the static tree is built from them (``measured_tree``), or,
        for a run recorded without them, is the default tree, with a warning."""
        acc = []
        for k in range(self.num_heads):
            row = [heldout.get(f"rank{r}/{k}") for r in range(RANKS)]
            if any(v is None for v in row):
                break
            acc.append([float(v) for v in row])
        self.rank_accuracy = acc or None
        if self.tree_kind != "measured":
            return
        if self.rank_accuracy is None:
            log.warning("algorithm.tree=measured: the run's summary.json has no held-out "
                        "per-rank head accuracies (eval_split.metrics rank{r}/{k}; runs "
                        "trained before they were recorded lack them), so the Medusa tree is "
                        "the default tree of algorithm.tree_size=%d nodes. Train the run again "
                        "for a measured tree.", self.tree_size)
            return
        self.tree_choices = measured_tree(self.rank_accuracy, self.tree_size)

    @classmethod
    def check_decode_settings(cls, cfg, vocab_size: int) -> None:
        """Tree ranks (``algorithm.tree_choices``) at or above the vocabulary size."""
        top = max(max(p) for p in _tree_choices(cfg, int(cfg.num_heads)))
        if cfg.tree_choices is None and enum_value(cfg.tree) == "measured":
            if vocab_size < RANKS:  # a measured tree may use any counted rank
                raise UserError(f"algorithm.tree=measured may use ranks 0..{RANKS - 1}, but "
                                f"the target's vocabulary has {vocab_size} tokens. Set "
                                "algorithm.tree=default.")
        if top >= vocab_size:
            raise UserError(f"algorithm.tree_choices uses rank {top}, but the target's "
                            f"vocabulary has {vocab_size} tokens (ranks 0..{vocab_size - 1}). "
                            "Lower the ranks, or set algorithm.tree_choices=null for the "
                            "default tree.")

    @classmethod
    def export_files(cls, fmt, run_dir, cfg, state, dtype, load_target):
        """vLLM's ``MedusaModel``: ``blocks.{i}.layers.{j}.weight/bias`` + ``lm_heads.{i}``.
        With ``lm_head=shared`` the config sets ``original_lm_head`` and the target's lm_head
        is written once as ``lm_heads.0.weight`` (vLLM reads it as the shared head)."""
        a = cfg.algorithm
        tensors = dict(state)
        shared = enum_value(a.lm_head) == "shared"
        if shared:
            tensors["lm_heads.0.weight"] = load_target().lm_head.weight.detach().clone()
        if "lm_heads.0.weight" not in tensors:
            raise UserError(f"{run_dir}'s draft weights lack lm_heads.0.weight: they do not "
                            "match its config.json (algorithm.lm_head). Train the run again.")
        vocab, hidden = tensors["lm_heads.0.weight"].shape
        config = {
            "model_type": "medusa", "architectures": ["MedusaModel"],
            "hidden_size": hidden, "vocab_size": vocab, "truncated_vocab_size": vocab,
            "num_heads": a.num_heads, "num_hidden_layers": a.num_layers,
            "medusa_fc_bias": True, "original_lm_head": shared,
            "torch_dtype": str(dtype).removeprefix("torch."),
        }
        return config, cast(tensors, dtype)

    @classmethod
    def serving_commands(cls, fmt: str, export_dir, cfg) -> list[str]:
        """vLLM <= 0.32 only: vLLM 0.33 removed the Medusa method, model and config (checked in
        the 0.32.0 and 0.33.0 wheels: 0.32.0 has ``vllm/model_executor/models/medusa.py``,
        ``vllm/transformers_utils/configs/medusa.py`` and ``"medusa"`` in
        ``vllm/config/speculative.py``'s methods; 0.33.0 names Medusa nowhere). vLLM's
        MedusaConfig sets its head count to ``num_speculative_tokens``, so K = num_heads."""
        k = int(cfg.algorithm.num_heads)
        spec = json.dumps({"method": "medusa", "model": str(export_dir),
                           "num_speculative_tokens": k})
        from specbench.export import serving_target

        target, extra = serving_target(cfg.model)
        return [
            "vLLM <= 0.32 (the format of vLLM 0.32.0's MedusaModel; vLLM 0.33 removed Medusa, "
            "its method, model and config, and cannot load this export):",
            f"  vllm serve {shlex.quote(target)}{extra} --speculative-config "
            f"{shlex.quote(spec)}",
            f"  vLLM drafts a top-1 chain of the {k} heads (no static tree); keep "
            "num_speculative_tokens at num_heads.",
            "SGLang: no Medusa support.",
        ]

    # ------------------------------------------------------------------------ the model
    def head_logits(self, k: int, hidden: torch.Tensor) -> torch.Tensor:
        z = self.blocks[k](hidden)
        weight = self.target_lm_head if self.shared else self.lm_heads[k].weight
        return F.linear(z, weight.to(z.dtype) if self.shared else weight)

    def forward(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head at every position: a list of K tensors [..., V]."""
        return [self.head_logits(k, hidden) for k in range(self.num_heads)]

    @torch.no_grad()
    def greedy_labels(self, hidden: torch.Tensor, needed: torch.Tensor) -> torch.Tensor:
        """The target's greedy next token at each position where ``needed`` (else -1)."""
        out = torch.full(needed.shape, -1, dtype=torch.long, device=hidden.device)
        if needed.any():
            h = hidden[needed]
            out[needed] = F.linear(h, self.target_lm_head.to(h.dtype)).argmax(-1)
        return out

    def loss(self, features: Features, batch: dict[str, torch.Tensor]):
        hidden = features.final_hidden
        ids, mask = batch["input_ids"], batch["loss_mask"].bool()
        length = ids.shape[1]
        if self.labels == "self_distill":
            # greedy[p] predicts x_{p+1}; it is needed where x_{p+1} is trained on.
            needed = torch.zeros_like(mask)
            needed[:, :-1] = mask[:, 1:]
            greedy = self.greedy_labels(hidden, needed)
            flops = float(needed.sum()) * 2 * self.hidden_size * self.vocab_size
        else:
            flops = 0.0
        total = hidden.new_zeros((), dtype=torch.float32)
        counters = {}
        for k in range(self.num_heads):
            span = length - 2 - k
            if span <= 0:
                break
            valid = mask[:, 2 + k:]  # x_{t+2+k} is an assistant token, t in [0, span)
            if self.labels == "self_distill":
                target = greedy[:, 1 + k: 1 + k + span]
            else:
                target = ids[:, 2 + k:]
            h = hidden[:, :span][valid]
            y = target[valid]
            n = y.numel()
            if n == 0:
                continue
            z = self.blocks[k](h)
            weight = self.target_lm_head if self.shared else self.lm_heads[k].weight
            loss_k, hits1, hits5 = linear_cross_entropy(z, weight, y)
            total = total + (self.decay ** k) * loss_k
            count = torch.tensor(float(n))
            counters[f"top1/{k}"] = (hits1.float(), count)
            counters[f"top5/{k}"] = (hits5.float(), count)
            counters[f"loss/{k}"] = (loss_k.detach() * n, count)
            if not self.training:  # held-out pass: the per-rank hits a measured tree needs
                hits = rank_hits(z, weight, y)
                for r in range(RANKS):
                    counters[f"rank{r}/{k}"] = (hits[r].float(), count)
            flops += n * self.position_flops()
        tokens = batch["attention_mask"].sum() if "attention_mask" in batch else ids.numel()
        counters["draft_flops"] = (torch.tensor(flops), torch.as_tensor(tokens).float())
        return total, counters


def rank_hits(z: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
              chunk: int = 512) -> torch.Tensor:
    """[RANKS] counts: rows whose label is exactly the r-th best of ``z @ weight.T`` (r logits
    strictly above the label's own, as ``linear_cross_entropy`` counts top-1; a row with
    non-finite logits counts nowhere)."""
    counts = torch.zeros(RANKS + 1, dtype=torch.long, device=z.device)
    for i in range(0, z.shape[0], chunk):
        logits = F.linear(z[i: i + chunk], weight.to(z.dtype)).float()
        own = logits.gather(1, labels[i: i + chunk, None])
        rank = (logits > own).sum(-1)
        rank[~(torch.isfinite(logits).all(-1))] = RANKS
        counts += torch.bincount(rank.clamp(max=RANKS), minlength=RANKS + 1)
    return counts[:RANKS]


class MedusaChain:
    """Heads read the target's last hidden state at the last verified position t; the pending
    token is x_{t+1}, so head k proposes x_{t+2+k}."""

    name = "medusa_chain"

    def __init__(self, medusa: Medusa, num_draft: int):
        self.m, self.k = medusa, min(num_draft, medusa.num_heads)

    def start(self, ids, out):
        self.h = out.final_hidden[0, -1]

    @torch.no_grad()
    def propose(self, ids):
        w = next(self.m.parameters())
        h = self.h.to(w.dtype)
        return [int(self.m.head_logits(k, h).argmax()) for k in range(self.k)]

    def accept(self, ids, n_new, out):
        self.h = out.final_hidden[0, -1]


def _tree_choices(cfg, num_heads: int) -> list[tuple[int, ...]]:
    return checked_choices(cfg.tree_choices, num_heads, int(cfg.tree_size))


class MedusaTree(MedusaChain):
    """Static tree: node (r_0, .., r_d) carries the r_d-th best token of head d; one target
    pass verifies every path."""

    name = "medusa_tree"

    def __init__(self, medusa: Medusa, choices: list[tuple[int, ...]], tree: str = "choices"):
        super().__init__(medusa, medusa.num_heads)
        # the node budget, stated beside every tree result (tree size is a confound)
        self.budget = {"nodes": len(choices), "tree": tree}
        depth = tree_depth(choices)
        if depth > medusa.num_heads:
            raise ValueError(f"tree depth {depth} exceeds the {medusa.num_heads} heads")
        self.choices = order_choices(choices)
        self.depth, self.topk = depth, tree_topk(choices)

    @torch.no_grad()
    def propose(self, ids):
        w = next(self.m.parameters())
        h = self.h.to(w.dtype)
        top = [self.m.head_logits(k, h).topk(self.topk).indices.tolist()
               for k in range(self.depth)]
        return tree_from_candidates(self.choices, top)
