"""Training data: conversations -> tokenised rows with assistant-only loss masks -> batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from specbench.data.conversations import ConversationSet, load_conversations
from specbench.data.tokenization import TokenizedRow, tokenize_conversation
from specbench.errors import UserError
from specbench.io import stable_hash
from specbench.log import get_logger

log = get_logger(__name__)

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
    return stable_hash(conv, compact=False)  # default separators: the split stays the same


def build_dataset(data_cfg, tokenizer, max_length: int, *, verbose: bool = True,
                  progress: bool | None = None) -> ChatDataset:
    """Load, validate, tokenise and split. The eval split is content-based, so it does not move
    with the seed: the ``data.eval_rows`` rows with the smallest content hashes.

    ``verbose`` prints what was skipped or held out; ``progress`` shows a tokenising bar
    (None: only on a terminal; False: never). A split that leaves no training row is a
    UserError naming the setting to change."""
    from tqdm import tqdm

    convs = load_conversations(data_cfg)
    n, eval_rows = len(convs.rows), int(data_cfg.eval_rows)
    limited = (f" (data.max_rows={data_cfg.max_rows} limits how many are read)"
               if data_cfg.max_rows is not None and n >= data_cfg.max_rows else "")
    if eval_rows < 0:
        raise UserError(f"data.eval_rows={eval_rows} must be 0 or more (the rows held out of "
                        "training for the eval loss).")
    if eval_rows >= n:
        raise UserError(f"data.eval_rows={eval_rows} leaves no training rows out of the {n} "
                        f"usable conversations in {convs.source}{limited}; lower data.eval_rows"
                        f"{' or raise data.max_rows' if limited else ''}.")
    eval_ids = set(sorted(range(n), key=lambda i: _row_key(convs.rows[i]))[:eval_rows])
    train, evals, skipped = [], [], []
    for i, conv in enumerate(tqdm(convs.rows, desc="tokenise", unit="row", leave=False,
                                  disable=None if progress in (None, True) else True)):
        row = tokenize_conversation(tokenizer, conv, max_length)
        if sum(row.loss_mask) == 0:
            skipped.append({"row": i, "reason": f"no assistant token within {max_length} tokens"})
            continue
        (evals if i in eval_ids else train).append(row)
    if not train:
        too_long = sum(1 for r in skipped if r["row"] not in eval_ids)
        raise UserError(
            f"No training row remains, so nothing would be trained: of the {n} usable "
            f"conversations in {convs.source}{limited}, data.eval_rows={eval_rows} are held out "
            f"and the other {too_long} have no assistant token within the first "
            f"trainer.max_length={max_length} tokens ({len(convs.bad_rows)} bad rows were "
            "skipped before). Raise trainer.max_length, lower data.eval_rows"
            f"{', raise data.max_rows' if limited else ''}, or use shorter conversations.")
    dataset = ChatDataset(train=train, eval=evals, conversations=convs, max_length=max_length,
                          skipped=skipped)
    if verbose:
        for line in report_lines(dataset, data_cfg):
            log.info(line.removeprefix("[specbench] "))
    return dataset


def report_lines(dataset: ChatDataset, data_cfg) -> list[str]:
    """Console lines about rows that were skipped, cut, or held out of training."""
    c, lines = dataset.conversations, []
    if c.bad_rows:
        first = ", ".join(str(b["line"]) for b in c.bad_rows[:5])
        more = ", ..." if len(c.bad_rows) > 5 else ""
        lines.append(f"[specbench] data: {len(c.bad_rows)} bad row(s) skipped in {c.source} "
                     f"(lines {first}{more}; first: {c.bad_rows[0]['reason']}); reasons in "
                     "summary.json under dataset.bad_row_examples. data.bad_rows=error stops "
                     "at the first one instead.")
    if dataset.skipped:
        lines.append(f"[specbench] data: {len(dataset.skipped)} row(s) skipped: no assistant "
                     f"token within trainer.max_length={dataset.max_length} tokens.")
    n = len(c.rows)
    if data_cfg.eval_rows > 0.25 * n:
        lines.append(f"[specbench] warning: data.eval_rows={data_cfg.eval_rows} holds "
                     f"{data_cfg.eval_rows} of {n} rows ({100 * data_cfg.eval_rows / n:.0f}%) out "
                     f"of training, which trains on {len(dataset.train)} rows; lower "
                     "data.eval_rows to train on more.")
    return lines


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
