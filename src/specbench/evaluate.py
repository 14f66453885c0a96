"""Evaluate a trained draft with the lossless decoder.

    python -m specbench.evaluate outputs/<run>                     # the run's own eval settings
    python -m specbench.evaluate outputs/<run> --num-prompts 20 --max-new-tokens 96
    python -m specbench.evaluate outputs/<run> --prompts ../question.jsonl   # Spec-Bench format

Runs, interleaved on every prompt in one process: plain greedy decoding (the reference and the
speed baseline), prompt lookup decoding, Lookahead decoding, and the run's own draft with chain
drafting and with its tree (Medusa: static tree; EAGLE-3: EAGLE-2 dynamic tree). Every output is
checked token for token against the greedy one. Reports tau (tokens per target forward, bonus
included), tokens/s, speedup over greedy, target forwards and the share of time spent drafting,
per method, overall and per prompt category; writes ``eval.json`` in the run directory.

The target, its settings and the evaluation settings come from the run's recorded config; the
flags only override evaluation settings. A draft only works with the target it was trained on,
so ``--model`` naming another target is refused. Multi-turn questions (MT-bench / Spec-Bench
``turns``) are answered turn by turn, each later turn following the model's own earlier answers;
every turn is one measured sample.
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
from specbench.config import enum_value
from specbench.data.conversations import embedded_path
from specbench.decoding import Autoregressive, PromptLookup, speculative_generate
from specbench.errors import UserError
from specbench.lookahead import Lookahead
from specbench.target import load_target

EMBEDDED_PROMPTS = "embedded:heldout_prompts.jsonl"


def _question(row: dict, where: str) -> dict:
    turns = row.get("turns") or row.get("prompt")
    if isinstance(turns, str):
        turns = [turns]
    if not turns or not all(isinstance(t, str) and t for t in turns):
        raise UserError(f"{where}: a question needs 'turns' (a list of strings, Spec-Bench / "
                        "MT-bench format) or 'prompt' (a string).")
    return {"id": row.get("question_id", row.get("id")), "turns": list(turns),
            "category": str(row.get("category") or "all")}


def load_questions(spec: str | None, num: int) -> list[dict]:
    """Questions from the embedded held-out prompts (None), a JSON-lines file, or
    ``hub:DATASET_ID[:SPLIT]``. With several categories, questions are taken round-robin
    across categories in file order, so that a small ``num`` still covers every category."""
    if spec and spec.startswith("hub:"):
        rows = _hub_rows(spec[4:])
        questions = [_question(r, f"{spec} row {i}") for i, r in enumerate(rows)]
    else:
        path = embedded_path("heldout_prompts.jsonl") if spec in (None, EMBEDDED_PROMPTS) \
            else Path(spec)
        if not path.is_file():
            raise UserError(f"eval.prompts={spec!r} does not exist. Give a JSON-lines file with "
                            "'turns' (Spec-Bench / MT-bench question.jsonl) or 'prompt' per "
                            "line, hub:DATASET_ID, or leave it null for the embedded held-out "
                            "prompts.")
        questions = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({err.msg}); fix the line "
                                    "or point eval.prompts at another file.") from None
                questions.append(_question(row, f"{path}:{lineno}"))
    by_cat: dict[str, list[dict]] = {}
    for q in questions:
        by_cat.setdefault(q["category"], []).append(q)
    picked, queues = [], [list(v) for v in by_cat.values()]
    while len(picked) < num and any(queues):
        for queue in queues:
            if queue and len(picked) < num:
                picked.append(queue.pop(0))
    return picked


def _hub_rows(spec: str) -> list[dict]:
    from specbench.target import hub_reachable

    name, _, split = spec.partition(":")
    if not hub_reachable():
        raise UserError(f"eval.prompts=hub:{spec} needs the Hugging Face Hub, which is not "
                        "reachable from here (or HF_HUB_OFFLINE is set). Download the "
                        "question file and pass its path as eval.prompts (or --prompts), or "
                        "leave eval.prompts null for the embedded held-out prompts.")
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:
        raise UserError(f"eval.prompts=hub:{spec} could not be loaded ({type(err).__name__}: "
                        f"{err}). Check the dataset id and split (hub:ID:SPLIT).") from None
    return [dict(r) for r in ds]


def check_eval_settings(e, prompts: bool = True) -> None:
    """Fail before training, not after it, on evaluation settings that cannot work
    (``prompts``: also read the start of the prompts file)."""
    for key in ("num_prompts", "max_new_tokens", "prompt_lookup_ngram", "prompt_lookup_draft"):
        if int(e[key]) < 1:
            raise UserError(f"eval.{key}={e[key]} must be at least 1 (or set "
                            "eval.enabled=false to skip the evaluation).")
    Lookahead(e.lookahead.level, e.lookahead.window, e.lookahead.guess)
    if prompts and e.prompts and not str(e.prompts).startswith("hub:"):
        load_questions(e.prompts, 1)  # the file exists and its first rows parse


def load_draft(run_dir: Path, cfg, target):
    weights = run_dir / "draft.safetensors"
    if not weights.is_file():
        raise UserError(f"{run_dir} has no draft.safetensors: the run did not complete. Finish "
                        "it (trainer.resume=true) before evaluating.")
    algo = get_algorithm(cfg.algorithm.name)
    draft = algo.from_state(cfg.algorithm, target, load_file(str(weights)))
    # decode in the target's dtype: the frozen buffers borrowed from it are already in it
    return draft.to(device=target.device, dtype=target.model.dtype).eval()


def check_same_target(recorded, requested, run_dir: Path) -> None:
    """Refuse a target other than the one the draft was trained on (dtype may differ)."""
    def identity(m):
        m = OmegaConf.to_container(m, resolve=True, enum_to_str=True) if not isinstance(m, dict) \
            else m
        return {k: m.get(k) for k in ("source", "hub_id", "path", "revision", "arch")}

    mine, theirs = identity(recorded), identity(requested)
    diff = [f"model.{k}: trained {mine[k]!r}, requested {theirs[k]!r}"
            for k in mine if mine[k] != theirs[k]]
    if diff:
        raise UserError(f"{run_dir} holds a draft trained on another target ("
                        + "; ".join(diff) + "). A draft only works with the target whose "
                        "features it learned, so evaluating it under another model would "
                        "measure nothing. Drop --model to use the run's own target, or evaluate "
                        "a run trained with that model.")


def _model_config(name_or_overrides: list[str]):
    from specbench.config import compose

    over = [o if "=" in o else f"model={o}" for o in name_or_overrides]
    try:
        return compose(over).model
    except Exception as err:
        raise UserError(f"--model {' '.join(name_or_overrides)}: {err}") from None


def evaluate(run_dir: Path, eval_overrides: dict | None = None, device: str = "auto",
             model: list[str] | None = None, tracker=None) -> dict:
    """Evaluate ``run_dir`` with its recorded eval settings updated by ``eval_overrides``
    (keys of the ``eval`` config: num_prompts, max_new_tokens, prompts, dtype, ...)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a specbench run directory (no config.json); pass "
                        "the directory a training run printed as its results.")
    cfg = OmegaConf.create(json.loads((run_dir / "config.json").read_text()))
    if model:
        check_same_target(cfg.model, _model_config(model), run_dir)
    from specbench.config import EvalConfig

    e = OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg.get("eval") or {},
                        {k: v for k, v in (eval_overrides or {}).items() if v is not None})
    if e.dtype is not None:
        cfg.model.dtype = enum_value(e.dtype)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_eval_settings(e, prompts=False)  # load_questions reads and checks the prompts
    questions = load_questions(e.prompts, e.num_prompts)
    target = load_target(cfg.model, device=device)
    draft = load_draft(run_dir, cfg, target)
    tok = target.tokenizer
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    la = e.lookahead
    alg = cfg.algorithm.name
    methods = {
        "autoregressive": Autoregressive,
        "prompt_lookup": lambda: PromptLookup(e.prompt_lookup_ngram, e.prompt_lookup_draft),
        "lookahead": lambda: Lookahead(la.level, la.window, la.guess),
        f"{alg}_chain": draft.proposer,
        # Medusa: its static tree (algorithm.tree_choices); EAGLE-3: the EAGLE-2 dynamic tree
        f"{alg}_tree": lambda: draft.proposer(tree=True),
    }
    per_prompt = []
    try:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(q["turns"]) for q in questions), desc="evaluate",
                   disable=not sys.stderr.isatty())
    except ImportError:  # pragma: no cover
        bar = None
    for q in questions:
        messages = []
        for turn, text in enumerate(q["turns"]):
            messages.append({"role": "user", "content": text})
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            record = {"id": q["id"], "turn": turn, "category": q["category"],
                      "prompt_tokens": len(ids)}
            reference = None
            for name, make in methods.items():  # interleaved: every method on this prompt
                res = speculative_generate(target, make(), ids, e.max_new_tokens, eos)
                if reference is None:
                    reference = res.tokens
                record[name] = {"tokens": len(res.tokens), "target_forwards": res.target_forwards,
                                "tau": res.tau, "time_s": res.total_time_s,
                                "draft_time_s": res.draft_time_s,
                                "exact": res.tokens == reference}
            # the next turn follows the model's own (greedy) answer
            messages.append({"role": "assistant",
                             "content": tok.decode(reference, skip_special_tokens=True)})
            per_prompt.append(record)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

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
    result = {"run": run_dir.name, "algorithm": alg,
              "fingerprint": _recorded_fingerprint(run_dir),
              "settings": {"num_prompts": len(questions), "samples": len(per_prompt),
                           "max_new_tokens": e.max_new_tokens, "dtype": str(cfg.model.dtype),
                           "device": str(target.device),
                           "decoding": "greedy (temperature 0), lossless verification",
                           "prompts": e.prompts or EMBEDDED_PROMPTS,
                           "prompt_lookup": {"max_ngram": e.prompt_lookup_ngram,
                                             "num_draft": e.prompt_lookup_draft},
                           "lookahead": {"level": la.level, "window": la.window,
                                         "guess": la.guess}},
              "overall": aggregate(per_prompt),
              "per_category": {c: aggregate([r for r in per_prompt if r["category"] == c])
                               for c in categories},
              "per_prompt": per_prompt}
    write_json(run_dir / "eval.json", result)
    if tracker is not None:
        tracker.log_eval(result)
    return result


def _eval_tracker(run_dir: Path, mode: str):
    """A W&B run for a standalone evaluation: same group (fingerprint) as the training run,
    job type ``<algorithm>-eval``, the run's recorded config."""
    config_file = Path(run_dir) / "config.json"
    if mode == "disabled" or not config_file.is_file():
        return None
    from specbench.tracking import RunTracker

    config = json.loads(config_file.read_text())
    tcfg = OmegaConf.create(config.get("tracker") or {"mode": "disabled"})
    if mode != "run":
        tcfg.mode = mode
    if str(tcfg.get("mode", "disabled")) == "disabled":
        return None
    return RunTracker(Path(run_dir), tcfg, config, _recorded_fingerprint(run_dir) or "unknown",
                      f"{config['algorithm']['name']}-eval")


def _recorded_fingerprint(run_dir: Path) -> str | None:
    summary = run_dir / "summary.json"
    return json.loads(summary.read_text()).get("fingerprint") if summary.is_file() else None


def print_table(result: dict) -> None:
    s = result["settings"]
    print(f"\n[specbench] lossless decoding of the {result['algorithm']} run: "
          f"{s['num_prompts']} prompts ({s['samples']} turns), {s['max_new_tokens']} new tokens, "
          f"{s['dtype']} on {s['device']}")
    print(f"  {'method':22s}{'tau':>7s}{'tok/s':>8s}{'speedup':>9s}{'fwd':>6s}{'draft%':>8s}"
          f"{'exact':>7s}")
    for name, m in result["overall"].items():
        print(f"  {name:22s}{m['tau']:7.2f}{m['tokens_per_s']:8.1f}{m['speedup']:9.2f}"
              f"{m['target_forwards']:6d}{100 * m['draft_time_share']:7.1f}%"
              f"{'yes' if m['exact'] else 'NO':>7s}")
    cats = result["per_category"]
    if len(cats) > 1:
        names = list(result["overall"])[1:]
        print(f"  tau per category: {'category':14s}" + "".join(f"{n[:14]:>15s}" for n in names))
        for c, agg in cats.items():
            print(f"  {'':18s}{c[:14]:14s}" + "".join(f"{agg[n]['tau']:15.2f}" for n in names))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--num-prompts", type=int, default=None,
                   help="questions to decode (default: the run's eval.num_prompts)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--prompts", default=None,
                   help="a question.jsonl path, hub:DATASET_ID[:SPLIT], or 'embedded:'")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                   help="override the target dtype (fp32 makes any mismatch a failure)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--tracker", choices=["run", "offline", "online", "disabled"], default="run",
                   help="W&B logging of the results as a run of job type <algorithm>-eval in "
                        "the run's group (its fingerprint); 'run': the run's own tracker.mode")
    p.add_argument("--model", nargs="+", default=None, metavar="NAME_OR_OVERRIDE",
                   help="the target to evaluate under (a conf/model name or model.KEY=VALUE); "
                        "refused unless it is the run's own target")
    args = p.parse_args(argv)
    prompts = EMBEDDED_PROMPTS if args.prompts == "embedded:" else args.prompts
    over = {"num_prompts": args.num_prompts, "max_new_tokens": args.max_new_tokens,
            "prompts": prompts, "dtype": args.dtype}
    tracker = None
    try:
        tracker = _eval_tracker(args.run_dir, args.tracker)
        result = evaluate(args.run_dir, over, args.device, args.model, tracker=tracker)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if tracker is not None:
            tracker.finish()
    print_table(result)
    print(f"  written: {args.run_dir}/eval.json")
    bad = [n for n, m in result["overall"].items() if not m["exact"]]
    if bad and result["settings"]["dtype"] == "float32":
        print(f"  MISMATCH against greedy in fp32: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
