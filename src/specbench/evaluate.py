"""Evaluate a trained draft with the lossless decoder.

    python -m specbench.evaluate outputs/<run> [--num-prompts 20] [--max-new-tokens 96]

Runs, interleaved on every prompt in one process: plain greedy decoding (the reference and the
speed baseline), prompt lookup decoding, and the run's own draft (chain drafting). Each output
is checked token for token against the greedy one. Reports tau (tokens per target forward,
bonus included), tokens/s, speedup over greedy, target forwards and the share of time spent
drafting, per method, overall and per prompt category; writes ``eval.json`` in the run
directory. The target and its dtype come from the run's own recorded config. Medusa is also
run with its static tree, EAGLE-3 with the EAGLE-2 dynamic tree; Lookahead decoding is not
implemented yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from specbench.algorithms import get_algorithm
from specbench.checkpoint import write_json
from specbench.data.conversations import embedded_path
from specbench.decoding import Autoregressive, PromptLookup, speculative_generate
from specbench.errors import UserError
from specbench.target import load_target


def load_prompts(path: Path | None, num: int) -> list[dict]:
    path = path or embedded_path("heldout_prompts.jsonl")
    if not path.is_file():
        raise UserError(f"--prompts {str(path)!r} does not exist. Give a JSON-lines file with a "
                        "'prompt' field (or Spec-Bench's 'turns') per line.")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: invalid JSON ({err.msg}).") from None
            text = row.get("prompt") or (row.get("turns") or [None])[0]
            if not text:
                raise UserError(f"{path}: a row has neither 'prompt' nor 'turns'.")
            rows.append({"id": row.get("id", row.get("question_id")), "prompt": text,
                         "category": row.get("category", "all")})
    return rows[:num]


def load_draft(run_dir: Path, cfg, target):
    weights = run_dir / "draft.safetensors"
    if not weights.is_file():
        raise UserError(f"{run_dir} has no draft.safetensors: the run did not complete. Finish "
                        "it (trainer.resume=true) before evaluating.")
    algo = get_algorithm(cfg.algorithm.name)
    draft = algo.from_state(cfg.algorithm, target, load_file(str(weights)))
    # decode in the target's dtype: the frozen buffers borrowed from it are already in it
    return draft.to(device=target.device, dtype=target.model.dtype).eval()


def evaluate(run_dir: Path, num_prompts: int = 20, max_new_tokens: int = 96,
             prompts_path: Path | None = None, dtype: str | None = None,
             device: str = "auto") -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a specbench run directory (no config.json).")
    cfg = OmegaConf.create(json.loads((run_dir / "config.json").read_text()))
    if dtype:
        cfg.model.dtype = dtype
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = load_target(cfg.model, device=device)
    draft = load_draft(run_dir, cfg, target)
    tok = target.tokenizer
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    prompts = load_prompts(prompts_path, num_prompts)
    methods = {"autoregressive": Autoregressive, "prompt_lookup": PromptLookup,
               f"{cfg.algorithm.name}_chain": draft.proposer}
    # trees: Medusa's static tree, EAGLE-3's EAGLE-2 dynamic tree (top_k 8, depth 5, 32 nodes)
    methods[f"{cfg.algorithm.name}_tree"] = lambda: draft.proposer(tree=True)
    per_prompt = []
    for row in prompts:
        ids = tok.apply_chat_template([{"role": "user", "content": row["prompt"]}],
                                      tokenize=False, add_generation_prompt=True)
        ids = tok(ids, add_special_tokens=False)["input_ids"]
        record = {"id": row["id"], "category": row["category"]}
        reference = None
        for name, make in methods.items():  # interleaved: every method on this prompt
            res = speculative_generate(target, make(), ids, max_new_tokens, eos)
            if reference is None:
                reference = res.tokens
            record[name] = {"tokens": len(res.tokens), "target_forwards": res.target_forwards,
                            "tau": res.tau, "time_s": res.total_time_s,
                            "draft_time_s": res.draft_time_s, "exact": res.tokens == reference}
        per_prompt.append(record)

    def aggregate(rows) -> dict:
        out = {}
        base = sum(r["autoregressive"]["time_s"] for r in rows)
        for name in methods:
            toks = sum(r[name]["tokens"] for r in rows)
            fwd = sum(r[name]["target_forwards"] for r in rows)
            secs = sum(r[name]["time_s"] for r in rows)
            out[name] = {"tau": toks / max(1, fwd), "tokens_per_s": toks / secs,
                         "speedup": base / secs, "target_forwards": fwd,
                         "draft_time_share": sum(r[name]["draft_time_s"] for r in rows) / secs,
                         "exact": all(r[name]["exact"] for r in rows),
                         "mismatches": sum(not r[name]["exact"] for r in rows)}
        return out

    categories = sorted({r["category"] for r in per_prompt})
    result = {"run": run_dir.name, "algorithm": cfg.algorithm.name,
              "settings": {"num_prompts": len(per_prompt), "max_new_tokens": max_new_tokens,
                           "dtype": str(cfg.model.dtype), "decoding": "greedy; chain and tree drafting",
                           "prompts": str(prompts_path or "embedded:heldout_prompts.jsonl")},
              "overall": aggregate(per_prompt),
              "per_category": {c: aggregate([r for r in per_prompt if r["category"] == c])
                               for c in categories},
              "per_prompt": per_prompt}
    write_json(run_dir / "eval.json", result)
    return result


def print_table(result: dict) -> None:
    s = result["settings"]
    print(f"\n[specbench] {result['algorithm']} run, {s['num_prompts']} prompts, "
          f"{s['max_new_tokens']} new tokens, {s['dtype']}")
    print(f"  {'method':22s}{'tau':>7s}{'tok/s':>8s}{'speedup':>9s}{'fwd':>6s}{'draft%':>8s}"
          f"{'exact':>7s}")
    for name, m in result["overall"].items():
        print(f"  {name:22s}{m['tau']:7.2f}{m['tokens_per_s']:8.1f}{m['speedup']:9.2f}"
              f"{m['target_forwards']:6d}{100 * m['draft_time_share']:7.1f}%"
              f"{'yes' if m['exact'] else 'NO':>7s}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--num-prompts", type=int, default=20)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--prompts", type=Path, default=None)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                   help="override the target dtype (fp32 makes any mismatch a failure)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = p.parse_args(argv)
    try:
        result = evaluate(args.run_dir, args.num_prompts, args.max_new_tokens, args.prompts,
                          args.dtype, args.device)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(result)
    print(f"  written: {args.run_dir}/eval.json")
    bad = [n for n, m in result["overall"].items() if not m["exact"]]
    if bad and result["settings"]["dtype"] == "float32":
        print(f"  MISMATCH against greedy in fp32: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
