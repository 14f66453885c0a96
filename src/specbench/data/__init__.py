"""Training data: conversations -> tokenised rows with assistant-only loss masks -> batches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch

from specbench.data.conversations import ConversationSet, load_conversations
from specbench.data.tokenization import TokenizedRow, tokenize_conversation

__all__ = ["ChatDataset", "build_dataset", "collate", "epoch_order"]


@dataclass
class ChatDataset:
    train: list[TokenizedRow]
    eval: list[TokenizedRow]
    conversations: ConversationSet
    max_length: int = 0
    skipped: list[dict] = field(default_factory=list)  # rows with no assistant token in max_length

    def key(self) -> dict:
        """What determines the tokenised training rows (for caches derived from them)."""
        return {"sha256": self.conversations.sha256, "max_length": self.max_length,
                "train_rows": len(self.train), "eval_rows": len(self.eval)}

    def stats(self) -> dict:
        c = self.conversations
        return {
            "source": c.source,
            "rows_read": c.rows_read,
            "rows": len(c.rows),
            "sha256": c.sha256,
            "bad_rows": len(c.bad_rows),
            "bad_row_examples": c.bad_rows[:10],
            "rows_without_assistant_tokens": len(self.skipped),
            "train_rows": len(self.train),
            "eval_rows": len(self.eval),
            "train_tokens": sum(len(r.input_ids) for r in self.train),
            "train_loss_tokens": sum(sum(r.loss_mask) for r in self.train),
        }


def _row_key(conv) -> str:
    return hashlib.sha256(json.dumps(conv, sort_keys=True).encode()).hexdigest()


def build_dataset(data_cfg, tokenizer, max_length: int) -> ChatDataset:
    """Load, validate, tokenise and split. The eval split is content-based, so it does not move
    with the seed: the ``data.eval_rows`` rows with the smallest content hashes."""
    convs = load_conversations(data_cfg)
    if data_cfg.eval_rows >= len(convs.rows):
        from specbench.errors import UserError

        raise UserError(f"data.eval_rows={data_cfg.eval_rows} leaves no training rows out of "
                        f"{len(convs.rows)}; lower data.eval_rows.")
    eval_ids = set(sorted(range(len(convs.rows)), key=lambda i: _row_key(convs.rows[i]))
                   [: data_cfg.eval_rows])
    train, evals, skipped = [], [], []
    for i, conv in enumerate(convs.rows):
        row = tokenize_conversation(tokenizer, conv, max_length)
        if sum(row.loss_mask) == 0:
            skipped.append({"row": i, "reason": f"no assistant token within {max_length} tokens"})
            continue
        (evals if i in eval_ids else train).append(row)
    return ChatDataset(train=train, eval=evals, conversations=convs, max_length=max_length,
                       skipped=skipped)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The row order of one epoch: a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def collate(rows: list[TokenizedRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row. Padding has attention 0 and loss mask 0."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(r.loss_mask)
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": mask}
