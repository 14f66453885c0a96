"""The reduced draft vocabulary of EAGLE-3: the N most frequent assistant tokens of the data.

``draft_ids`` (sorted ascending) are target token ids; ``d2t[i] = draft_ids[i] - i`` is the offset
that maps draft id i to its target id (target = i + d2t[i]), and ``t2d`` is a bool mask over the
target vocabulary. Counting runs over loss-masked (assistant) tokens of the training split only;
ties and unseen tokens are ordered by token id, so the result is deterministic. Results are
cached on disk by a key over the dataset hash, tokenizer, max length and N.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file

from specbench.io import cache_root


@dataclass
class DraftVocab:
    draft_ids: torch.Tensor  # int64 [N], sorted target ids
    coverage: float  # fraction of assistant tokens whose id is in the draft vocabulary
    cache_key: str

    @property
    def d2t(self) -> torch.Tensor:
        return self.draft_ids - torch.arange(len(self.draft_ids), dtype=torch.long)

    def t2d(self, vocab_size: int) -> torch.Tensor:
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        mask[self.draft_ids] = True
        return mask


def count_assistant_tokens(rows, vocab_size: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for r in rows:
        ids = torch.tensor(r.input_ids, dtype=torch.long)
        mask = torch.tensor(r.loss_mask, dtype=torch.bool)
        counts += torch.bincount(ids[mask], minlength=vocab_size)[:vocab_size]
    return counts


def select_draft_ids(counts: torch.Tensor, n: int) -> torch.Tensor:
    """Top-n by count (ties and zero counts broken by the smaller id), returned sorted."""
    n = min(n, counts.numel())
    order = torch.sort(-counts, stable=True).indices[:n]
    return torch.sort(order).values


def build_draft_vocab(rows, vocab_size: int, n: int, key_parts: dict) -> DraftVocab:
    key = hashlib.sha256(json.dumps({**key_parts, "vocab_size": vocab_size, "n": n},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "draft_vocab" / f"{key}.safetensors"
    if path.is_file():
        data = load_file(str(path))
        return DraftVocab(data["draft_ids"], float(data["coverage"]), key)
    counts = count_assistant_tokens(rows, vocab_size)
    ids = select_draft_ids(counts, n)
    total = int(counts.sum())
    coverage = float(counts[ids].sum()) / total if total else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    save_file({"draft_ids": ids, "coverage": torch.tensor(coverage, dtype=torch.float64)}, tmp)
    os.replace(tmp, path)
    return DraftVocab(ids, coverage, key)
