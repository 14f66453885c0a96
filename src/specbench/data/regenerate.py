"""Regenerate a self-distilled chat dataset: the target answers each prompt greedily.

    python -m specbench.data.regenerate                       # the embedded set, with SmolLM2
    python -m specbench.data.regenerate --model qwen2.5-7b \
        --prompts my_prompts.jsonl --out my_chat.jsonl

Prompts are JSON lines with a "prompt" field (and optional "id", "category"). The output has one
conversation per line in OpenAI messages form, plus ``<out>.generation.json`` recording the
settings, so that the file can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from specbench.config import compose
from specbench.data.conversations import embedded_path
from specbench.errors import UserError
from specbench.io import BadLine, atomic_open, file_sha256, iter_jsonl, write_json
from specbench.log import get_logger
from specbench.target import load_target

log = get_logger(__name__)


def read_prompts(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"--prompts {str(path)!r} does not exist. Give a JSON-lines file with a "
                        "'prompt' field per line.")
    rows = []
    for lineno, row in iter_jsonl(path):
        if isinstance(row, BadLine):
            what = "not UTF-8 text" if row.kind == "utf8" else f"invalid JSON ({row.reason})"
            raise UserError(f"{path}:{lineno}: {what}.")
        if not isinstance(row, dict) or not str(row.get("prompt", "")).strip():
            raise UserError(f"{path}:{lineno}: a row needs a non-empty 'prompt' field.")
        rows.append(row)
    return rows


@torch.no_grad()
def generate_answers(target, prompts: list[str], max_new_tokens: int, batch_size: int,
                     log=print) -> list[str]:
    tok = target.tokenizer
    tok.padding_side = "left"
    answers = []
    start = time.time()
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i: i + batch_size]
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                         add_generation_prompt=True) for p in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = target.model.generate(**enc.to(target.device), max_new_tokens=max_new_tokens,
                                    do_sample=False, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:]:
            answers.append(tok.decode(row, skip_special_tokens=True).strip())
        log(f"  {len(answers)}/{len(prompts)} answered ({time.time() - start:.0f} s)")
    return answers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="a conf/model name")
    p.add_argument("--model-override", action="append", default=[],
                   help="extra Hydra overrides for the model, e.g. model.path=/dir")
    p.add_argument("--prompts", type=Path, default=embedded_path("prompts.jsonl"))
    p.add_argument("--out", type=Path, default=embedded_path("chat.jsonl"))
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    args = p.parse_args(argv)
    try:
        cfg = compose([f"model={args.model}", f"model.dtype={args.dtype}", *args.model_override])
        prompts = read_prompts(args.prompts)
        target = load_target(cfg.model)
        log.info(f"answering {len(prompts)} prompts with {cfg.model.name} "
                 f"({args.dtype}, greedy, max {args.max_new_tokens} new tokens)")
        torch.manual_seed(0)
        answers = generate_answers(target, [r["prompt"] for r in prompts], args.max_new_tokens,
                                   args.batch_size)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out, "w") as f:
        for row, answer in zip(prompts, answers):
            conv = {"id": row.get("id"), "category": row.get("category"),
                    "messages": [{"role": "user", "content": row["prompt"]},
                                 {"role": "assistant", "content": answer}]}
            f.write(json.dumps(conv, ensure_ascii=False) + "\n")
    import transformers

    meta = {
        "model": cfg.model.name, "hub_id": cfg.model.hub_id, "dtype": args.dtype,
        "decoding": "greedy", "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "padding_side": "left",
        "prompts_file": args.prompts.name,
        "prompts_sha256": file_sha256(args.prompts),
        "rows": len(answers), "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    write_json(args.out.with_suffix(".generation.json"), meta)
    log.info(f"wrote {args.out} and {args.out.with_suffix('.generation.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
