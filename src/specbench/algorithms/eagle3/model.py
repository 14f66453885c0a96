"""The EAGLE-3 draft: ``fc`` over the fused aux-layer features, one draft decoder layer, the
final norm and a draft-vocabulary lm_head; its training-time-test loss and its inference
``extend`` (used by the proposers)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from specbench.algorithms.base import DraftAlgorithm
from specbench.algorithms.draft_vocab import build_draft_vocab
from specbench.algorithms.eagle3 import export
from specbench.algorithms.eagle3.config import (
    DEFAULT_DRAFT_VOCAB,
    Eagle3Config,
    aux_layers_of,
    draft_config,
    tree_settings,
)
from specbench.algorithms.eagle3.draft_cache import DraftCache, StaticDraftCache
from specbench.algorithms.eagle3.layers import DraftLayer, RMSNorm
from specbench.algorithms.eagle3.proposers import Eagle3Chain, Eagle3Tree
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.target import FeatureSpec


def shift_left(x: torch.Tensor, n: int) -> torch.Tensor:
    """x[:, n:] padded with zeros (False) at the end, same shape."""
    if n == 0:
        return x
    out = torch.zeros_like(x)
    if n < x.shape[1]:
        out[:, : x.shape[1] - n] = x[:, n:]
    return out


class Eagle3(DraftAlgorithm):
    name = "eagle3"
    config_class = Eagle3Config
    proposers = ("chain", "tree")
    export_formats = ("vllm", "sglang")

    def __init__(self, cfg, target_config, embed_weight: torch.Tensor, target_lm_head: torch.Tensor,
                 draft_ids: torch.Tensor, coverage: float | None = None):
        super().__init__()
        c = draft_config(cfg, target_config, len(draft_ids))
        self.draft_cfg = c
        self.aux_layers = aux_layers_of(cfg, target_config)
        self.ttt_length = int(cfg.ttt_length)  # ranges: Eagle3Config.__post_init__
        tree = tree_settings(cfg)  # ranges: Eagle3Config
        self.tree = {k: tree[k] for k in ("top_k", "depth", "total_token")}
        self.decay = float(cfg.step_decay)
        self.attention = enum_value(cfg.attention)
        self.coverage = coverage
        self._trained_pairs = False  # a training batch has had a pair to train on
        self._warned_no_pairs = False
        h = c.hidden_size
        self.fc = nn.Linear(3 * h, h, bias=False)
        self.midlayer = DraftLayer(c)
        self.norm = RMSNorm(h, c.rms_norm_eps)
        self.lm_head = nn.Linear(h, c.draft_vocab_size, bias=False)
        self.register_buffer("d2t", draft_ids - torch.arange(len(draft_ids)))
        self.register_buffer("draft_ids", draft_ids.clone(), persistent=False)
        t2d = torch.zeros(c.vocab_size, dtype=torch.bool)
        t2d[draft_ids] = True
        self.register_buffer("t2d", t2d)
        self.register_buffer("embed_weight", embed_weight.detach(), persistent=False)
        self.register_buffer("target_lm_head", target_lm_head.detach(), persistent=False)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.rotary = LlamaRotaryEmbedding(config=c)

    # ------------------------------------------------------------------ registry interface
    @classmethod
    def feature_spec(cls, cfg, target_config) -> FeatureSpec:
        return FeatureSpec(layers=tuple(aux_layers_of(cfg, target_config)), final_hidden=True)

    @classmethod
    def build(cls, cfg, target, data=None) -> Eagle3:
        """``data``: the ChatDataset whose training rows define the draft vocabulary."""
        c = draft_config(cfg, target.config)
        rows = data.train if data is not None else []
        key = {"model": target.name, "tokenizer": target.tokenizer.name_or_path,
               "tokenizer_size": len(target.tokenizer),
               "dataset": data.key() if data is not None else None}
        vocab = build_draft_vocab(rows, target.config.vocab_size, c.draft_vocab_size, key)
        return cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight,
                   vocab.draft_ids, vocab.coverage)

    @classmethod
    def from_state(cls, cfg, target, state: dict) -> Eagle3:
        """A trained draft from its saved tensors; the draft vocab comes from its d2t. An
        export with equal vocabularies carries no d2t/t2d (vLLM 0.33 refuses them): then the
        draft vocabulary is the whole target vocabulary."""
        if "d2t" not in state:
            v = target.config.vocab_size
            if "lm_head.weight" not in state or state["lm_head.weight"].shape[0] != v:
                raise UserError("The draft's tensors lack d2t, the draft-to-target token map; "
                                "only a draft whose vocabulary is the target's whole "
                                f"vocabulary ({v} tokens) may omit it. Export the run again.")
            state = {**state, "d2t": torch.zeros(v, dtype=torch.long),
                     "t2d": torch.ones(v, dtype=torch.bool)}
        draft_ids = state["d2t"] + torch.arange(state["d2t"].numel())
        m = cls(cfg, target.config, target.embed_tokens.weight, target.lm_head.weight, draft_ids)
        m.load_trainable_state_dict(state)
        return m

    def describe(self) -> dict:
        return {"draft_vocab_size": int(self.d2t.numel()), "draft_vocab_coverage": self.coverage,
                "aux_layers": self.aux_layers, "attention": self.resolved_attention(),
                "draft_config": {k: getattr(self.draft_cfg, k) for k in (
                    "hidden_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "rms_norm_eps")}}

    def serving_config(self) -> dict:
        """config.json of an SGLang/vLLM export (written next to the checkpoints)."""
        return export.serving_config(self.draft_cfg)

    @classmethod
    def export_files(cls, fmt, run_dir, cfg, state, dtype, load_target):
        return export.export_files(run_dir, state, dtype)

    @classmethod
    def check_decode_settings(cls, cfg, vocab_size: int) -> None:
        """An ``algorithm.top_k`` above the draft vocabulary."""
        dv = int(cfg.draft_vocab_size or DEFAULT_DRAFT_VOCAB.get(vocab_size,
                                                                min(vocab_size, 32000)))
        tree = tree_settings(cfg)
        k, key = tree["top_k"], tree["source"]["top_k"]
        if k > min(dv, vocab_size):
            raise UserError(f"algorithm.{key}={k} exceeds the draft vocabulary of "
                            f"{min(dv, vocab_size)} tokens (algorithm.draft_vocab_size, at most "
                            f"the target's {vocab_size}). Lower algorithm.{key}.")

    @classmethod
    def serving_commands(cls, fmt, export_dir, cfg) -> list[str]:
        return export.serving_commands(fmt, export_dir, cfg)

    def _layer_macs(self, context: float) -> float:
        """Multiply-accumulates of the draft layer at one position with ``context`` keys."""
        c = self.draft_cfg
        h, hd, nh, nkv = c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads
        return (2 * h * hd * (nh + 2 * nkv) + nh * hd * h + 3 * h * c.intermediate_size
                + 2 * nh * hd * context)

    # ------------------------------------------------------------------------ the model
    def resolved_attention(self) -> str:
        if self.attention == "auto":
            return "flex" if self.fc.weight.is_cuda else "diagonal"
        return self.attention

    def _backend(self) -> str:
        backend = self.resolved_attention()
        if backend == "flex" and not self.fc.weight.is_cuda and torch.is_grad_enabled():
            raise UserError("algorithm.attention=flex cannot train on the CPU: PyTorch's CPU "
                            "flex_attention has no backward pass. Use algorithm.attention=auto "
                            "(flex on CUDA, diagonal elsewhere) or diagonal.")
        return backend

    def ttt_forward(self, aux: list[torch.Tensor], input_ids: torch.Tensor,
                    steps: int | None = None) -> list[torch.Tensor]:
        """Hidden states [B, L, H] after each TTT step (before the final norm)."""
        hidden = self.fc(torch.cat(aux, dim=-1))
        b, length = input_ids.shape
        cache: list = []
        outs = []
        base = torch.arange(length, device=input_ids.device)[None]
        backend = self._backend()
        for k in range(steps or self.ttt_length):
            ids = shift_left(input_ids, 1 + k)
            embeds = F.embedding(ids, self.embed_weight).to(hidden.dtype)
            cos, sin = self.rotary(hidden, base + k)
            hidden = self.midlayer(embeds, hidden, cos[:, None], sin[:, None], cache, backend)
            outs.append(hidden)
        return outs

    def extend(self, hidden: torch.Tensor, token_ids: torch.Tensor, start: int,
               cache: DraftCache | StaticDraftCache, positions: list[int] | None = None,
               allowed: torch.Tensor | None = None, eager: bool = False) -> torch.Tensor:
        """Inference: run the draft layer on n new positions (RoPE ``start``.., or
        ``positions``) whose queries see every cached key plus the new ones causally (or what
        the bool mask ``allowed`` [n, cached + n] permits); ``cache`` keeps their keys/values.
        Over a static cache in ``compiled`` or ``graphs`` mode the forward is the compiled one
        (one per n), unless ``eager`` (a prompt's prefill, whose n varies)."""
        n = token_ids.shape[1]
        pos = (torch.tensor(positions, device=hidden.device) if positions is not None
               else torch.arange(start, start + n, device=hidden.device))[None]
        mask = cache.prepare(n, allowed, hidden.device)
        step = self._extend_step
        graphs = not eager and cache.mode == "graphs"
        if not eager and cache.mode in ("compiled", "graphs"):
            step = self._compiled_step(cache.mode)
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        out = step(hidden, token_ids, pos, mask, cache)
        cache.advance(n)
        return out.clone() if graphs else out  # a graph's next replay overwrites its output

    def _extend_step(self, hidden, token_ids, pos, mask, cache):
        embeds = F.embedding(token_ids, self.embed_weight).to(hidden.dtype)
        cos, sin = self.rotary(hidden, pos)
        return self.midlayer.extend(embeds, hidden, cos[:, None], sin[:, None], cache, mask)

    def _compiled_step(self, mode: str):
        compiled = self.__dict__.setdefault("_compiled", {})
        if mode not in compiled:
            kw = {"mode": "reduce-overhead"} if mode == "graphs" else {}
            compiled[mode] = torch.compile(self._extend_step, dynamic=False, **kw)
        return compiled[mode]

    def new_cache(self, mode: str = "dynamic", positions: int = 0):
        """A draft KV cache for one decode: growing (``dynamic``), or for ``static``,
        ``compiled`` and ``graphs`` one preallocated ``StaticDraftCache`` with room for
        ``positions``, kept across prompts (so compiled forwards and graphs are reused)."""
        if mode == "dynamic":
            return DraftCache()
        c = self.__dict__.get("_static_cache")
        w = self.fc.weight
        if c is None or c.mode != mode or c.max_len < positions or c.k.device != w.device:
            a = self.midlayer.self_attn
            c = StaticDraftCache(a.kv_heads, a.head_dim, -(-positions // 512) * 512, w.dtype,
                                 w.device, mode)
            self.__dict__["_static_cache"] = c
        c.n = 0
        return c

    def make_proposer(self, kind: str = "chain", num_draft: int | None = None,
                      top_k: int | None = None, depth: int | None = None,
                      total_token: int | None = None):
        """Drafting for the lossless decoder: a ``chain`` of autoregressive draft steps with
        the draft's own KV cache, feeding back its hidden states as in training; or the
        EAGLE-2 dynamic ``tree`` in the reference's terms: each level keeps the ``top_k`` best
        nodes by cumulative log-probability and expands each into ``top_k`` children, for
        ``depth`` + 1 levels; the best ``total_token`` - 1 nodes (plus the root) are verified
        (defaults: algorithm.top_k, depth, total_token)."""
        if kind == "tree":
            t = self.tree
            return Eagle3Tree(self, top_k or t["top_k"], t["depth"] if depth is None else depth,
                              total_token or t["total_token"])
        return Eagle3Chain(self, num_draft or self.ttt_length)

    def draft_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden))

    @torch.no_grad()
    def soft_targets(self, final_hidden, needed):
        """Target probabilities over the draft vocab [B, L, Vd] and "target argmax is in the
        draft vocab" [B, L], at positions where ``needed`` (zeros elsewhere)."""
        b, length, _ = final_hidden.shape
        draft_ids = self.draft_ids
        probs = final_hidden.new_zeros((b, length, draft_ids.numel()), dtype=torch.float32)
        in_vocab = torch.zeros((b, length), dtype=torch.bool, device=final_hidden.device)
        if needed.any():
            h = final_hidden[needed]
            logits = F.linear(h, self.target_lm_head.to(h.dtype)).float()
            in_vocab[needed] = self.t2d[logits.argmax(-1)]
            probs[needed] = torch.softmax(logits[:, draft_ids], dim=-1)
        return probs, in_vocab

    def loss(self, features, batch):
        ids, mask = batch["input_ids"], batch["loss_mask"].bool()
        aux = [features.layers[i] for i in self.aux_layers]
        needed = shift_left(mask, 1)  # target logits at p are used when x_{p+1} is trained
        probs, in_vocab = self.soft_targets(features.final_hidden, needed)
        outs = self.ttt_forward(aux, ids)
        total = probs.new_zeros(())
        counters = {}
        c = self.draft_cfg
        tokens = float(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        positions, length = ids.numel(), ids.shape[1]
        # forward + backward = 3 x forward; a MAC is 2 FLOPs. Soft targets: forward only.
        flops = 6 * positions * 3 * c.hidden_size ** 2 \
            + float(needed.sum()) * 2 * c.hidden_size * c.vocab_size
        for k, hidden in enumerate(outs):
            flops += 6 * positions * self._layer_macs(length / 2 + k)
            labels = shift_left(mask, 2 + k)  # every trained label position of step k
            valid = labels & shift_left(in_vocab, 1 + k)
            n = int(valid.sum())
            if n == 0:
                if labels.any():  # all outside the draft vocabulary: all misses
                    counters[f"top1/{k}"] = (torch.tensor(0.0), torch.tensor(float(labels.sum())))
                continue
            target = probs[:, 1 + k:][valid[:, : length - 1 - k]]  # probs at t+1+k
            logits = self.draft_logits(hidden[valid]).float()
            loss_k = -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
            total = total + (self.decay ** k) * loss_k
            self._trained_pairs = True
            with torch.no_grad():
                # argmax of a NaN row points at the NaN: never count a non-finite row as a hit
                finite = torch.isfinite(logits).all(-1) & torch.isfinite(target).all(-1)
                hits = ((logits.argmax(-1) == target.argmax(-1)) & finite).sum().float()
                count = torch.tensor(float(n))
                # SpecForge's and EAGLE's denominator: every label position; one whose target
                # token lies outside the draft vocabulary is a miss (decoding cannot propose it)
                counters[f"top1/{k}"] = (hits, torch.tensor(float(labels.sum())))
                counters[f"loss/{k}"] = (loss_k.detach() * n, count)
            flops += 6 * n * c.hidden_size * c.draft_vocab_size
        counters["draft_flops"] = (torch.tensor(flops), torch.tensor(tokens))
        if torch.is_grad_enabled() and not total.requires_grad:
            total = self._no_pairs(needed, total)
        return total, counters

    def _no_pairs(self, needed: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """A training batch without one trained pair: the target's greedy token lies outside
        the draft vocabulary at every assistant position. Refused on the first batch (the
        draft vocabulary is too small to train); later, a warning (once) and a zero loss that
        still backpropagates (zero gradients): a batch of a few short answers can be unlucky,
        and that must not stop a run."""
        dv = self.d2t.numel()
        if not self._trained_pairs and needed.any():
            raise UserError(
                f"algorithm.draft_vocab_size={dv} is too small to train on: at every one of "
                f"the {int(needed.sum())} assistant positions of the first batch the target's "
                "greedy token lies outside the draft vocabulary, so EAGLE-3 has no pair to "
                "train on. Raise algorithm.draft_vocab_size, or leave it unset (null) for the "
                "default.")
        if needed.any() and not self._warned_no_pairs:
            self._warned_no_pairs = True
            warnings.warn(f"algorithm.draft_vocab_size={dv}: a training batch had no pair to "
                          "train on (the target's greedy token lies outside the draft "
                          "vocabulary at all its assistant positions); it adds nothing to the "
                          "gradients. If this recurs, raise algorithm.draft_vocab_size.",
                          stacklevel=3)
        return zero + sum(p.sum() for p in self.parameters()) * 0.0
