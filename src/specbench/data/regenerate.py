"""Regenerate a self-distilled chat dataset: the target answers each prompt greedily.

    python -m specbench.data.regenerate            # the large embedded corpus, with SmolLM2
    python -m specbench.data.regenerate --prompts embedded:prompts.jsonl \
        --out chat.jsonl --max-new-tokens 256      # the small embedded set
    python -m specbench.data.regenerate --model qwen2.5-7b --prompts my_prompts.jsonl \
        --out my_chat.jsonl.gz

Prompts are JSON lines with a "prompt" field, or a "turns" list of user turns (a follow-up turn
is answered with the conversation so far as context), and optional "id", "category" and "long"
(a long-form prompt: up to --long-max-new-tokens). The output has one conversation per line in
OpenAI messages form (gzip-compressed when the name ends in .gz), plus
``<out>.generation.json`` recording the settings, the token counts and the time it took.

The work is split into shards of --shard-rows prompts (one batch each; long-form prompts in
their own shards), each written atomically to ``<out>.shards/`` when all its turns are answered.
A killed run started again with the same settings skips the finished shards; different settings
are refused (name a fresh --work-dir or delete the old one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import torch

from specbench.config import compose
from specbench.data.conversations import embedded_path
from specbench.decoding import _cache_keyword
from specbench.errors import UserError
from specbench.io import BadLine, atomic_open, file_sha256, iter_jsonl, read_json, write_json
from specbench.log import get_logger

log = get_logger(__name__)

EMBEDDED = "embedded:"


def resolve(spec: str) -> Path:
    """``embedded:NAME`` is a file shipped in specbench/data/embedded; anything else a path."""
    return embedded_path(spec[len(EMBEDDED):]) if spec.startswith(EMBEDDED) else Path(spec)


def read_prompts(path: Path) -> list[dict]:
    """Rows with ``turns`` (a list of user turns), ``id``, ``category`` and ``long``."""
    if not path.is_file():
        raise UserError(f"--prompts {str(path)!r} does not exist. Give a JSON-lines file with a "
                        "'prompt' (or 'turns') field per line.")
    rows = []
    for lineno, row in iter_jsonl(path):
        if isinstance(row, BadLine):
            what = "not UTF-8 text" if row.kind == "utf8" else f"invalid JSON ({row.reason})"
            raise UserError(f"{path}:{lineno}: {what}.")
        turns = row.get("turns", [row.get("prompt")]) if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns or \
                not all(isinstance(t, str) and t.strip() for t in turns):
            raise UserError(f"{path}:{lineno}: a row needs a non-empty 'prompt' field or a "
                            "'turns' list of non-empty strings.")
        rows.append({"id": row.get("id", f"row-{lineno}"), "category": row.get("category"),
                     "turns": turns, "long": bool(row.get("long", False))})
    if not rows:
        raise UserError(f"--prompts {str(path)!r} holds no prompts.")
    return rows


def plan_shards(rows: list[dict], shard_rows: int) -> list[list[int]]:
    """Row indices per shard: short prompts first, then long-form ones, in file order, so that a
    shard's rows share one token budget. Fixed by the prompts and --shard-rows alone."""
    shards = []
    for long in (False, True):
        idx = [i for i, r in enumerate(rows) if r["long"] == long]
        shards += [idx[i: i + shard_rows] for i in range(0, len(idx), shard_rows)]
    return shards


def append_cache():
    """A transformers KV cache that writes each step's entries into a buffer (doubled when
    full) instead of concatenating the whole cache every step, as ``DynamicCache`` does: at
    batch 64 the copies took about 60% of a step. The answers are the same, token for token."""
    from transformers.cache_utils import Cache, DynamicLayer

    class AppendLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.used = 0
                self.buf = [t.new_empty(*t.shape[:2], 1024, t.shape[3])
                            for t in (key_states, value_states)]
            n = key_states.shape[-2]
            while self.used + n > self.buf[0].shape[2]:
                self.buf = [torch.cat([b, torch.empty_like(b)], 2) for b in self.buf]
            for b, t in zip(self.buf, (key_states, value_states)):
                b[:, :, self.used: self.used + n] = t
            self.used += n
            self.keys, self.values = (b[:, :, : self.used] for b in self.buf)
            return self.keys, self.values

    return Cache(layer_class_to_replicate=AppendLayer)


@torch.no_grad()
def answer_batch(target, histories: list[list[dict]], max_new_tokens: int) -> tuple[list[str], int]:
    """Greedy answers to each history (messages ending in a user turn), batched with left
    padding, and the number of tokens generated (each answer up to and with its end token)."""
    tok = target.tokenizer
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(h, tokenize=False, add_generation_prompt=True)
             for h in histories]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = target.model.generate(**enc.to(target.device), max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=tok.pad_token_id,
                                **{_cache_keyword(target.model): append_cache()})
    answers, generated = [], 0
    eos = {tok.eos_token_id, tok.pad_token_id}
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        end = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
        generated += end
        answers.append(tok.decode(row[:end], skip_special_tokens=True).strip())
    return answers, generated


def answer_shard(target, rows: list[dict], settings: dict) -> tuple[list[dict], int]:
    """Every turn of every row, turn by turn (a turn's batch holds the rows that have it),
    shortest prompt first within a batch to keep padding low."""
    budget = settings["long_max_new_tokens" if rows[0]["long"] else "max_new_tokens"]
    histories = [[] for _ in rows]
    generated = 0
    for turn in range(max(len(r["turns"]) for r in rows)):
        live = [i for i, r in enumerate(rows) if len(r["turns"]) > turn]
        for i in live:
            histories[i].append({"role": "user", "content": rows[i]["turns"][turn]})
        live.sort(key=lambda i: sum(len(m["content"]) for m in histories[i]))
        for b in range(0, len(live), settings["batch_size"]):
            batch = live[b: b + settings["batch_size"]]
            answers, n = answer_batch(target, [histories[i] for i in batch], budget)
            generated += n
            for i, answer in zip(batch, answers):
                histories[i].append({"role": "assistant", "content": answer})
    convs = [{"id": r["id"], "category": r["category"], "messages": h}
             for r, h in zip(rows, histories)]
    return convs, generated


def check_settings(work: Path, settings: dict) -> None:
    """Record the settings in a new work directory, or refuse to mix shards of other ones."""
    path = work / "settings.json"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        write_json(path, settings)
        return
    old = read_json(path)
    differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    if differ:
        raise UserError(f"{work} holds shards made with other settings ({', '.join(differ)} "
                        "differ), so resuming would mix two datasets. Start again with the same "
                        "settings, or give a fresh --work-dir (or delete that directory).")


def write_conversations(path: Path, convs: list[dict]) -> None:
    """JSON lines, atomically; gzip (with a fixed timestamp, so the bytes are reproducible)
    when the name ends in .gz."""
    text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs).encode("utf-8")
    if path.suffix == ".gz":
        text = gzip.compress(text, compresslevel=9, mtime=0)
    with atomic_open(path, "wb") as f:
        f.write(text)


def generate(target, rows: list[dict], settings: dict, work: Path) -> dict:
    """Answer every shard not yet in ``work``; returns the totals over all shards."""
    from tqdm import tqdm

    shards = plan_shards(rows, settings["shard_rows"])
    done = [work / f"shard-{s:05d}.jsonl" for s in range(len(shards))]
    todo = [s for s in range(len(shards)) if not done[s].is_file()]
    bar = tqdm(total=len(rows), initial=len(rows) - sum(len(shards[s]) for s in todo),
               unit="conv", desc="regenerate", dynamic_ncols=True)
    start, new_tokens = time.time(), 0
    for s in todo:
        t0 = time.time()
        convs, n = answer_shard(target, [rows[i] for i in shards[s]], settings)
        new_tokens += n
        # stats first: a shard counts as done only once its .jsonl exists
        write_json(done[s].with_suffix(".json"), {"seconds": round(time.time() - t0, 2),
                                                  "generated_tokens": n, "rows": len(convs)})
        write_conversations(done[s], convs)
        bar.update(len(convs))
        bar.set_postfix(shard=f"{s + 1}/{len(shards)}",
                        tok_s=f"{new_tokens / (time.time() - start):.0f}")
    bar.close()
    stats = [read_json(d.with_suffix(".json")) for d in done]
    return {"shards": len(shards), "generated_tokens": sum(x["generated_tokens"] for x in stats),
            "generation_seconds": round(sum(x["seconds"] for x in stats), 1)}


def merged(rows: list[dict], work: Path, shard_count: int) -> list[dict]:
    """The shards' conversations back in the prompts' order. An answer cut by the token
    budget inside a multi-byte character (an emoji) ends in U+FFFD, which the data loader
    refuses as undecodable: that partial character is dropped."""
    by_id = {}
    for s in range(shard_count):
        for _, conv in iter_jsonl(work / f"shard-{s:05d}.jsonl"):
            for m in conv["messages"]:
                if m["role"] == "assistant":
                    m["content"] = m["content"].rstrip("\ufffd")
            by_id[conv["id"]] = conv
    return [by_id[r["id"]] for r in rows]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="a conf/model name")
    p.add_argument("--model-override", action="append", default=[],
                   help="extra Hydra overrides for the model, e.g. model.path=/dir")
    p.add_argument("--prompts", default="embedded:prompts-large.jsonl",
                   help="a JSON-lines file, or embedded:NAME for a shipped one")
    p.add_argument("--out", default=str(embedded_path("chat-large.jsonl.gz")),
                   help="the conversations file (.jsonl, or .jsonl.gz to compress)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where finished shards are kept (default: <out>.shards)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--long-max-new-tokens", type=int, default=384,
                   help="the budget of prompts marked long")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-rows", type=int, default=64)
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    args = p.parse_args(argv)
    for name in ("max_new_tokens", "long_max_new_tokens", "batch_size", "shard_rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = resolve(args.out)
    work = args.work_dir or out.with_name(out.name + ".shards")
    try:
        prompts_path = resolve(args.prompts)
        rows = read_prompts(prompts_path)
        cfg = compose([f"model={args.model}", f"model.dtype={args.dtype}", *args.model_override])
        import transformers

        settings = {
            "model": cfg.model.name, "hub_id": cfg.model.hub_id, "dtype": args.dtype,
            "decoding": "greedy", "max_new_tokens": args.max_new_tokens,
            "long_max_new_tokens": args.long_max_new_tokens, "batch_size": args.batch_size,
            "shard_rows": args.shard_rows, "padding_side": "left",
            "prompts_file": prompts_path.name, "prompts_sha256": file_sha256(prompts_path),
            "torch": torch.__version__, "transformers": transformers.__version__,
        }
        check_settings(work, settings)
        from specbench.target import load_target

        target = load_target(cfg.model)
        log.info(f"answering {len(rows)} prompts ({sum(len(r['turns']) for r in rows)} turns) "
                 f"with {cfg.model.name} ({args.dtype}, greedy); shards in {work}")
        torch.manual_seed(0)
        totals = generate(target, rows, settings, work)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    convs = merged(rows, work, totals["shards"])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_conversations(out, convs)
    meta_path = out.with_name(out.name.removesuffix(".gz").removesuffix(".jsonl")
                              + ".generation.json")
    write_json(meta_path, {**settings, "rows": len(convs),
                           "assistant_turns": sum(len(r["turns"]) for r in rows), **totals})
    log.info(f"wrote {out} ({len(convs)} conversations, {totals['generated_tokens']} generated "
             f"tokens in {totals['generation_seconds']:.0f} s of generation) and {meta_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
