"""Evaluate a trained draft with the lossless decoder.

    python -m specbench.evaluate outputs/<run>                     # the run's own decode settings
    python -m specbench.evaluate outputs/<run> --num-prompts 20 --max-new-tokens 96
    python -m specbench.evaluate outputs/<run> --prompts ../question.jsonl   # Spec-Bench format

Runs, interleaved on every prompt in one process: plain greedy decoding (the reference and the
speed baseline), prompt lookup decoding, Lookahead decoding, and the run's own draft with chain
drafting and with its tree (Medusa: static tree; EAGLE-3: EAGLE-2 dynamic tree). Every output is
checked token for token against the greedy one. Reports tau (the reference definition of EAGLE
and Spec-Bench: mean tokens committed per verify step, accepted + 1, the prefill left out),
tokens per target forward (the prefill included; specbench's tau before issue 11), the draft
nodes verified per step (mean and max: a tree's budget), tokens/s, speedup over greedy, target
forwards and the share of time spent drafting, per method, overall and per prompt category. The evaluation after training writes ``eval.json``
in the run directory; a standalone one writes ``eval-<label>.json`` (``--label``, by default the
time) and lists it in ``evals.json``, never overwriting an earlier result.

The target, its settings and the evaluation settings come from the run's recorded config; the
flags only override evaluation settings, and ``--set algorithm.KEY=VALUE`` the algorithm
settings that only change decoding (a tree shape; marked ``decoding=True`` in the algorithm's
schema), recorded in the file's ``settings.algorithm_overrides``. A draft only works with the target it was trained on,
so ``--model`` naming another target is refused. Multi-turn questions (MT-bench / Spec-Bench
``turns``) are answered turn by turn, each later turn following the model's own earlier answers;
every turn is one measured sample. The target is loaded with the run's ``trainer.seed`` and
without ``trust_remote_code`` unless ``--trust-remote-code`` is given: a run directory's config
never enables it. The draft weights are checked against the checksum their checkpoint recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from specbench.algorithms import get_algorithm
from specbench.checkpoint import read_run_config, read_run_weights, run_target_config
from specbench.config import enum_value
from specbench.data.conversations import embedded_path
from specbench.decoding import Autoregressive, PromptLookup, speculative_generate
from specbench.errors import UserError
from specbench.io import read_json, write_json
from specbench.log import get_logger
from specbench.lookahead import Lookahead
from specbench.target import load_target

log = get_logger(__name__)

EMBEDDED_PROMPTS = "embedded:heldout_prompts.jsonl"
INDEX = "evals.json"
# written into every new eval.json's settings; a file without it holds the older definition
# (new tokens / target forwards with the prefill), see docs/comparing.md
TAU_DEFINITION = "accepted+1 per verify step, prefill excluded (EAGLE, Spec-Bench)"


def _question(row, where: str) -> dict:
    if not isinstance(row, dict):
        raise UserError(f"{where}: a question is a JSON object with 'turns' (a list of strings, "
                        "Spec-Bench / MT-bench format) or 'prompt' (a string), not "
                        f"{json.dumps(row)[:40]}.")
    turns = row.get("turns") or row.get("prompt")
    if isinstance(turns, str):
        turns = [turns]
    if not turns or not all(isinstance(t, str) and t for t in turns):
        raise UserError(f"{where}: a question needs 'turns' (a list of strings, Spec-Bench / "
                        "MT-bench format) or 'prompt' (a string).")
    return {"id": row.get("question_id", row.get("id")), "turns": list(turns),
            "category": str(row.get("category") or "all")}


def load_questions(spec: str | None, num: int) -> list[dict]:
    """``num`` questions (or as many as there are) from the embedded held-out prompts (None),
    a JSON-lines file, or ``hub:DATASET_ID[:SPLIT]``. With several categories, questions are
    taken round-robin across categories in file order, so that a small ``num`` still covers
    every category."""
    questions = read_questions(spec)
    by_cat: dict[str, list[dict]] = {}
    for q in questions:
        by_cat.setdefault(q["category"], []).append(q)
    picked, queues = [], [list(v) for v in by_cat.values()]
    while len(picked) < num and any(queues):
        for queue in queues:
            if queue and len(picked) < num:
                picked.append(queue.pop(0))
    return picked


def too_few_prompts(spec: str | None, asked: int, have: int) -> str | None:
    """The line that says decode.num_prompts asks for more questions than ``spec`` holds."""
    if asked <= have:
        return None
    return (f"decode.num_prompts={asked}, but decode.prompts ({spec or EMBEDDED_PROMPTS}) holds "
            f"only {have} questions: the evaluation decodes those {have}. Lower decode.num_prompts, "
            "or give a larger question file as decode.prompts.")


def read_questions(spec: str | None) -> list[dict]:
    """Every question of ``spec`` (see ``load_questions``), in file order."""
    if spec and spec.startswith("hub:"):
        rows = _hub_rows(spec[4:])
        questions = [_question(r, f"{spec} row {i}") for i, r in enumerate(rows)]
    else:
        path = embedded_path("heldout_prompts.jsonl") if spec in (None, EMBEDDED_PROMPTS) \
            else Path(spec)
        if path.is_dir():
            raise UserError(f"decode.prompts={spec!r} is a directory, not a file. Give a "
                            "JSON-lines file with 'turns' (Spec-Bench / MT-bench "
                            "question.jsonl) or 'prompt' per line, hub:DATASET_ID, or leave it "
                            "null for the embedded held-out prompts.")
        if not path.is_file():
            raise UserError(f"decode.prompts={spec!r} does not exist. Give a JSON-lines file "
                            "with "
                            "'turns' (Spec-Bench / MT-bench question.jsonl) or 'prompt' per "
                            "line, hub:DATASET_ID, or leave it null for the embedded held-out "
                            "prompts.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"decode.prompts: {path} is not a UTF-8 text file (binary?). Give a "
                            "JSON-lines question file.") from None
        except OSError as err:
            raise UserError(f"decode.prompts: {path} cannot be read ({err.strerror or err}).") \
                from None
        questions = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({err.msg}); fix the line "
                                    "or point decode.prompts at another file.") from None
                questions.append(_question(row, f"{path}:{lineno}"))
        if not questions:
            raise UserError(f"decode.prompts: {path} holds no questions (it is empty). Give a "
                            "JSON-lines file with 'turns' or 'prompt' per line, or leave "
                            "decode.prompts null for the embedded held-out prompts.")
    return questions


def _hub_rows(spec: str) -> list[dict]:
    from specbench.target import hub_reachable

    name, _, split = spec.partition(":")
    if not hub_reachable():
        raise UserError(f"decode.prompts=hub:{spec} needs the Hugging Face Hub, which is not "
                        "reachable from here (or HF_HUB_OFFLINE is set). Download the "
                        "question file and pass its path as decode.prompts (or --prompts), or "
                        "leave decode.prompts null for the embedded held-out prompts.")
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:
        raise UserError(f"decode.prompts=hub:{spec} could not be loaded ({type(err).__name__}: "
                        f"{err}). Check the dataset id and split (hub:ID:SPLIT).") from None
    return [dict(r) for r in ds]


GRAPHS_NEED_CUDA = ("decode.verify=graphs captures CUDA graphs, but decoding runs on {device}. "
                    "Use decode.verify=static or decode.verify=compiled on a CPU (or decode "
                    "on a GPU).")


def check_eval_settings(e, prompts: bool = True) -> None:
    """Fail before training, not after it, on evaluation settings that cannot work
    (``prompts``: also read the start of the prompts file)."""
    for key in ("num_prompts", "max_new_tokens", "prompt_lookup_ngram", "prompt_lookup_draft"):
        if int(e[key]) < 1:
            raise UserError(f"decode.{key}={e[key]} must be at least 1 (or set "
                            "decode.enabled=false to skip the evaluation).")
    Lookahead(e.lookahead.level, e.lookahead.window, e.lookahead.guess)
    if enum_value(e.get("verify", "dynamic")) == "graphs" and not torch.cuda.is_available():
        raise UserError(GRAPHS_NEED_CUDA.format(device="a machine without CUDA"))
    if prompts:
        # the file exists, is not empty and parses; a hub: set is reachable and loads
        note = too_few_prompts(e.prompts, int(e.num_prompts), len(read_questions(e.prompts)))
        if note:
            warnings.warn(note, stacklevel=2)


def check_decode_against_target(cfg, vocab_size: int) -> None:
    """Fail right after loading the target, before training, on decoding settings its
    vocabulary cannot serve (the algorithm's ``check_decode_settings``: Medusa tree ranks at or
    above the vocabulary size, an EAGLE-3 ``algorithm.tree_top_k`` above the draft vocabulary)."""
    get_algorithm(cfg.algorithm.name).check_decode_settings(cfg.algorithm, int(vocab_size))


def load_draft(run_dir: Path, cfg, target, heldout: dict | None = None):
    """The run's trained draft, calibrated with its final held-out counters (``heldout``:
    summary.json's ``eval_split.metrics``), in the target's dtype and device, in eval mode."""
    if not (run_dir / "draft.safetensors").is_file():
        raise UserError(f"{run_dir} has no draft.safetensors: the run did not complete. Finish "
                        "it (trainer.resume=true) before evaluating.")
    algo = get_algorithm(cfg.algorithm.name)
    state = read_run_weights(run_dir)  # checked against its checkpoint's sha256
    try:
        draft = algo.from_state(cfg.algorithm, target, state)
    except (KeyError, RuntimeError, ValueError) as err:
        raise UserError(f"{run_dir / 'draft.safetensors'} does not fit the run's config.json "
                        f"({type(err).__name__}: {str(err)[:200]}): the files are from "
                        "different runs or damaged. Train the run again.") from None
    draft.calibrate(heldout or {})
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


def _check_label(run_dir: Path, label: str | None) -> tuple[str, Path]:
    """(label, file) of a standalone evaluation: ``eval-<label>.json``, never an existing one."""
    if label is None:
        base = time.strftime("%Y%m%d-%H%M%S")
        label, n = base, 1
        while (run_dir / f"eval-{label}.json").exists():
            n += 1
            label = f"{base}-{n}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", label):
        raise UserError(f"--label {label!r}: use letters, digits, '.', '_' and '-' only (at most "
                        "64, starting with a letter or digit).")
    path = run_dir / f"eval-{label}.json"
    if path.exists():
        raise UserError(f"{path} already exists: earlier results are never overwritten. Choose "
                        "another --label.")
    return label, path


def _add_to_index(run_dir: Path, label: str, path: Path, result: dict) -> None:
    """List a standalone evaluation in ``evals.json`` (under a lock: evaluations may run at
    once)."""
    from filelock import FileLock

    index = run_dir / INDEX
    with FileLock(str(run_dir / f".{INDEX}.lock")):
        data = read_json(index, "Delete or fix it; the eval-*.json files it lists are "
                         "untouched.") if index.exists() else {"evals": []}
        if not isinstance(data.get("evals"), list):
            raise UserError(f"{index} is not an evaluation index (no 'evals' list). Delete or "
                            "fix it; the eval-*.json files are untouched.")
        data["evals"].append({
            "label": label, "file": path.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "settings": {k: result["settings"][k] for k in
                         ("num_prompts", "max_new_tokens", "dtype", "device", "prompts",
                          "tau_definition")},
            "tau": {name: m["tau"] for name, m in result["overall"].items()}})
        write_json(index, data)


def _eval_config(run_dir: Path, cfg, eval_overrides: dict | None):
    """The run's recorded decode settings (its config.json's ``decode`` section, or ``eval``
    for a run recorded before the rename) updated by ``eval_overrides`` (None values ignored)."""
    from specbench.config import DecodeConfig, recorded_decode

    try:
        return OmegaConf.merge(OmegaConf.structured(DecodeConfig), recorded_decode(cfg) or {},
                               {k: v for k, v in (eval_overrides or {}).items() if v is not None})
    except Exception as err:  # omegaconf validation errors
        raise UserError(f"The decode settings of {run_dir / 'config.json'} with these flags are "
                        f"invalid ({str(err).splitlines()[0]}).") from None


def _methods(e, alg: str, draft) -> dict:
    """Every method decoded, by name -> a fresh proposer: greedy, prompt lookup, Lookahead,
    then each proposer kind the algorithm declares (``<algorithm>_chain``, ``_tree``, ...)."""
    la = e.lookahead
    methods = {
        "autoregressive": Autoregressive,
        "prompt_lookup": lambda: PromptLookup(e.prompt_lookup_ngram, e.prompt_lookup_draft,
                                              enum_value(e.prompt_lookup_match)),
        "lookahead": lambda: Lookahead(la.level, la.window, la.guess,
                                       variant=enum_value(la.variant)),
    }
    for kind in type(draft).proposers:
        methods[f"{alg}_{kind}"] = lambda kind=kind: draft.make_proposer(kind)
    return methods


def _decode_all(target, questions: list[dict], methods: dict, max_new_tokens: int,
                verify: str = "dynamic") -> list:
    """One record per turn: every method on that prompt (interleaved), checked against greedy
    token for token; a later turn follows the model's own greedy answer."""
    tok = target.tokenizer
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    per_prompt = []
    try:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(q["turns"]) for q in questions) * len(methods),
                   desc="evaluate", unit="run", disable=not sys.stderr.isatty())
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
                if bar is not None:
                    bar.set_description(f"evaluate {name}")
                res = speculative_generate(target, make(), ids, max_new_tokens, eos, verify)
                if reference is None:
                    reference = res.tokens
                record[name] = _record(res, reference)
                if bar is not None:
                    bar.set_postfix_str(f"prompt {len(per_prompt) + 1}/{bar.total // len(methods)}"
                                        f", {len(res.tokens) / max(res.total_time_s, 1e-9):.1f} "
                                        "tok/s", refresh=False)
                    bar.update(1)
            messages.append({"role": "assistant",
                             "content": tok.decode(reference, skip_special_tokens=True)})
            record["load_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            per_prompt.append(record)
    if bar is not None:
        bar.close()
    return per_prompt


LOAD_SLACK = 0.5  # the 1-minute load average may sit a little above the cores it fills
SLOW_GREEDY = 0.5  # a prompt's greedy tokens/s under this share of the run's median


def machine_load(per_prompt: list) -> dict:
    """Whether the timings were taken on a loaded machine: the 1-minute load average after any
    turn above the core count (+ ``LOAD_SLACK``), or turns whose greedy tokens/s fell below
    half of the run's own median. Speedups of a loaded run are flagged by compare."""
    cores = os.cpu_count() or 1
    loads = [r["load_1m"] for r in per_prompt if r.get("load_1m") is not None]
    rates = [r["autoregressive"]["tokens"] / r["autoregressive"]["time_s"] for r in per_prompt
             if r["autoregressive"]["time_s"] > 0]
    median = statistics.median(rates) if rates else None
    slow = sum(x < SLOW_GREEDY * median for x in rates) if median else 0
    reasons = []
    if loads and max(loads) > cores + LOAD_SLACK:
        reasons.append(f"1-minute load average up to {max(loads):.1f} on {cores} cores")
    if slow:
        reasons.append(f"{slow} of {len(rates)} turns decoded greedily below half the run's "
                       f"median {median:.1f} tokens/s")
    return {"cores": cores, "load_1m_max": max(loads) if loads else None,
            "greedy_tokens_per_s_median": median, "slow_greedy_turns": slow,
            "loaded": bool(reasons), "reasons": reasons}


def _record(res, reference) -> dict:
    """One method's figures on one turn."""
    reached, hits = res.acceptance_by_position()
    return {"tokens": len(res.tokens), "target_forwards": res.target_forwards,
            "tau": res.tau, "tokens_per_forward": res.tokens_per_forward,
            "verify_steps": len(res.step_tokens), "step_tokens": sum(res.step_tokens),
            "draft_nodes": sum(res.draft_nodes), "draft_nodes_max": max(res.draft_nodes, default=0),
            "time_s": res.total_time_s, "draft_time_s": res.draft_time_s,
            "accept_reached": reached, "accept_hits": hits,
            # the tokens each verify step committed (accepted + 1): the accepted-length histogram
            "accepted_lengths": list(res.step_tokens),
            "exact": res.tokens == reference,
            "first_divergence": first_divergence(res.tokens, reference)}


def first_divergence(tokens: list[int], reference: list[int]) -> int | None:
    """The first position where ``tokens`` differs from greedy's ``reference`` (a shorter or
    longer output differs where the shorter one ends); None when they are equal."""
    if tokens == reference:
        return None
    return next((i for i, (a, b) in enumerate(zip(tokens, reference)) if a != b),
                min(len(tokens), len(reference)))


def divergence_rate(records: list[dict], references: list[int]) -> tuple[int, float]:
    """(divergences, divergences per 1,000 tokens): a turn can diverge from greedy once, after
    which its tokens follow another prefix and are not comparable, so the rate counts the
    divergences over the greedy tokens decoded up to each one (the whole answer for a turn that
    never diverges): a hazard per 1,000 tokens, 0 for an exact method."""
    n = sum(r.get("first_divergence") is not None for r in records)
    exposed = sum(ref if r.get("first_divergence") is None else r["first_divergence"] + 1
                  for r, ref in zip(records, references))
    return n, 1000.0 * n / max(1, exposed)


def acceptance_by_position(rows: list, name: str) -> list[float]:
    """The conditional acceptance rate at each draft position, over ``rows`` (per-prompt
    records): accepted / reached, summed over verify steps. [] for a record written before
    the decoder counted them."""
    reached, hits = [], []
    for r in rows:
        for k, (n, a) in enumerate(zip(r[name].get("accept_reached", []),
                                        r[name].get("accept_hits", []))):
            if k == len(reached):
                reached.append(0)
                hits.append(0)
            reached[k] += n
            hits[k] += a
    while reached and reached[-1] == 0:  # positions no step reached have no rate
        reached.pop()
        hits.pop()
    return [a / n if n else 0.0 for n, a in zip(reached, hits)]


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(rows: list, name: str, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> dict:
    """95% percentile-bootstrap intervals over prompts (turns) of ``name``'s tau (tokens per
    verify step, pooled as in the overall figure) and speedup (greedy's time over its time):
    the prompts are resampled with replacement, ``resamples`` times, with a fixed seed."""
    import numpy as np

    if not rows:
        return {"tau_ci95": None, "speedup_ci95": None}
    col = lambda key, m=name: np.array([r[m][key] for r in rows], dtype=float)  # noqa: E731
    idx = np.random.default_rng(seed).integers(0, len(rows), size=(resamples, len(rows)))
    steps = col("verify_steps")[idx].sum(1)
    tau = np.where(steps > 0, col("step_tokens")[idx].sum(1) / np.maximum(steps, 1), 1.0)
    speed = col("time_s", "autoregressive")[idx].sum(1) / col("time_s")[idx].sum(1)
    pct = lambda x: [float(v) for v in np.percentile(x, [2.5, 97.5])]  # noqa: E731
    return {"tau_ci95": pct(tau), "speedup_ci95": pct(speed)}


def _aggregate(rows: list, methods) -> dict:
    out = {}
    base = sum(r["autoregressive"]["time_s"] for r in rows)
    for name in methods:
        toks = sum(r[name]["tokens"] for r in rows)
        fwd = sum(r[name]["target_forwards"] for r in rows)
        secs = sum(r[name]["time_s"] for r in rows)
        steps = sum(r[name]["verify_steps"] for r in rows)
        out[name] = {"tau": sum(r[name]["step_tokens"] for r in rows) / steps if steps else 1.0,
                     "tokens_per_forward": toks / max(1, fwd),
                     "draft_nodes_mean": sum(r[name]["draft_nodes"] for r in rows) / max(1, steps),
                     "draft_nodes_max": max(r[name]["draft_nodes_max"] for r in rows),
                     "tokens_per_s": toks / secs,
                     "speedup": base / secs, "target_forwards": fwd,
                     "draft_time_share": sum(r[name]["draft_time_s"] for r in rows) / secs,
                     "acceptance_by_position": acceptance_by_position(rows, name),
                     "exact": all(r[name]["exact"] for r in rows),
                     "mismatches": sum(not r[name]["exact"] for r in rows)}
        firsts = [r[name]["first_divergence"] for r in rows
                  if r[name].get("first_divergence") is not None]
        _, rate = divergence_rate([r[name] for r in rows],
                                  [r["autoregressive"]["tokens"] for r in rows])
        out[name].update(mismatches_per_1k_tokens=rate,
                         first_divergence=min(firsts) if firsts else None,
                         **bootstrap_ci(rows, name))
    return out


def decoding_overrides(cfg, items: list[str] | None) -> dict:
    """``algorithm.KEY=VALUE`` items (``--set``) as {KEY: value}, each KEY a setting of the
    run's algorithm marked ``decoding=True`` (it changes how the draft decodes, never what its
    weights mean); a UserError naming the setting otherwise. Applied to ``cfg.algorithm``."""
    import dataclasses

    from specbench.algorithms import CONFIGS

    name = cfg.algorithm.name
    fields = {f.name: f for f in dataclasses.fields(CONFIGS[name])}  # a registered algorithm
    over = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        bare = key[len("algorithm."):] if key.startswith("algorithm.") else None
        if not eq or not bare:
            raise UserError(f"--set {item!r}: give algorithm.KEY=VALUE (e.g. a tree setting of "
                            f"the {name} run).")
        marked = sorted(k for k, f in fields.items() if f.metadata.get("decoding"))
        if bare not in fields or not fields[bare].metadata.get("decoding"):
            why = "is not a setting of" if bare not in fields else \
                "changes what the trained weights mean for"
            raise UserError(f"--set {key}: algorithm.{bare} {why} the {name} run, so an "
                            "evaluation of the finished run cannot override it (only settings "
                            "that change decoding alone can: "
                            f"{', '.join('algorithm.' + k for k in marked) or 'none'}). Train a "
                            f"new run with {key}={value} instead.")
        try:
            over[bare] = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            over[bare] = value
    try:
        merged = OmegaConf.merge(cfg.algorithm, over)
        OmegaConf.to_object(merged)  # the schema's own checks (__post_init__)
    except Exception as err:  # omegaconf validation errors, __post_init__'s ValueError
        raise UserError(f"--set {' '.join(items)}: {str(err).splitlines()[0]}") from None
    cfg.algorithm = merged
    typed = OmegaConf.to_container(merged, enum_to_str=True)
    return {k: typed[k] for k in over}


def evaluate(run_dir: Path, eval_overrides: dict | None = None, device: str = "auto",
             model: list[str] | None = None, tracker=None, label: str | None = None,
             standalone: bool = False, trust_remote_code: bool = False,
             algorithm_overrides: list[str] | None = None) -> dict:
    """Evaluate ``run_dir`` with its recorded decode settings updated by ``eval_overrides``
    (keys of the ``decode`` config: num_prompts, max_new_tokens, prompts, dtype, ...) and its
    algorithm's decoding-only settings by ``algorithm_overrides`` (``algorithm.KEY=VALUE``).

    Writes ``eval.json`` (the evaluation after training); with ``standalone`` (or a ``label``)
    ``eval-<label>.json`` instead, listed in ``evals.json``. ``trust_remote_code`` lets the
    target run its own code; it is never taken from the run directory."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    summary = _recorded_summary(run_dir)  # a damaged summary.json fails before the work
    fp = summary.get("fingerprint")
    fingerprint = fp if isinstance(fp, str) else None
    out = run_dir / "eval.json"
    if standalone or label is not None:
        label, out = _check_label(run_dir, label)
    if model:
        check_same_target(cfg.model, _model_config(model), run_dir)
    e = _eval_config(run_dir, cfg, eval_overrides)
    alg_over = decoding_overrides(cfg, algorithm_overrides)
    model_cfg = run_target_config(cfg, trust_remote_code)
    if e.dtype is not None:
        model_cfg.dtype = enum_value(e.dtype)
    cfg.model = model_cfg
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_eval_settings(e, prompts=False)  # load_questions reads and checks the prompts
    questions = load_questions(e.prompts, e.num_prompts)
    note = too_few_prompts(e.prompts, int(e.num_prompts), len(questions))
    if note:
        log.info(f"{note}")
    target = load_target(cfg.model, seed=int((cfg.get("trainer") or {}).get("seed", 0)),
                         device=device)
    check_decode_against_target(cfg, target.config.vocab_size)
    heldout = (summary.get("eval_split") or {}).get("metrics")
    draft = load_draft(run_dir, cfg, target, heldout if isinstance(heldout, dict) else None)
    alg = cfg.algorithm.name
    methods = _methods(e, alg, draft)
    verify = enum_value(e.verify)
    if verify == "graphs" and torch.device(target.device).type != "cuda":
        raise UserError(GRAPHS_NEED_CUDA.format(device=target.device))
    per_prompt = _decode_all(target, questions, methods, e.max_new_tokens, verify)
    result = {"run": run_dir.resolve().name, "algorithm": alg, "label": label,
              "file": out.name,
              "fingerprint": fingerprint,
              "settings": _settings(e, cfg, methods, alg_over, target.device,
                                    len(questions), len(per_prompt)),
              "overall": _aggregate(per_prompt, methods),
              "per_category": {c: _aggregate([r for r in per_prompt if r["category"] == c],
                                             methods)
                               for c in sorted({r["category"] for r in per_prompt})},
              "machine_load": machine_load(per_prompt),
              "per_prompt": per_prompt}
    if note:  # fewer questions than decode.num_prompts asked for (only then: keys compare)
        result["settings"]["num_prompts_requested"] = int(e.num_prompts)
    write_json(out, result)
    if label is not None:
        _add_to_index(run_dir, label, out, result)
    if tracker is not None:
        tracker.log_eval(result)
    return result


def _settings(e, cfg, methods: dict, alg_over: dict, device, n_questions: int,
              n_samples: int) -> dict:
    """eval.json's settings: what was decoded and how (compare groups runs by them)."""
    la = e.lookahead
    settings = {"num_prompts": n_questions, "samples": n_samples,
                "max_new_tokens": e.max_new_tokens, "dtype": str(cfg.model.dtype),
                "device": str(device), "verify": enum_value(e.verify),
                "decoding": "greedy (temperature 0), lossless verification",
                "tau_definition": TAU_DEFINITION,
                "prompts": e.prompts or EMBEDDED_PROMPTS,
                "prompt_lookup": {"max_ngram": e.prompt_lookup_ngram,
                                  "num_draft": e.prompt_lookup_draft,
                                  "match": enum_value(e.prompt_lookup_match)},
                "lookahead": {"level": la.level, "window": la.window, "guess": la.guess,
                              "variant": enum_value(la.variant)}}
    budgets = {}
    for name, make in methods.items():  # a tree proposer's node budget, where it states one
        budget = getattr(make(), "budget", None)
        if isinstance(budget, dict):
            budgets[name] = json.loads(json.dumps(budget, default=str))
    if budgets:
        settings["budget"] = budgets
    if alg_over:
        settings["algorithm_overrides"] = {f"algorithm.{k}": v for k, v in alg_over.items()}
    return settings


def _eval_tracker(run_dir: Path, mode: str):
    """A W&B run for a standalone evaluation: same group (fingerprint) as the training run,
    job type ``<algorithm>-eval``, the run's recorded config."""
    if mode == "disabled":
        return None
    from specbench.tracking import RunTracker

    config = OmegaConf.to_container(read_run_config(run_dir), enum_to_str=True)
    tcfg = OmegaConf.create(config.get("tracker") or {"mode": "disabled"})
    if mode != "run":
        tcfg.mode = mode
    if str(tcfg.get("mode", "disabled")) == "disabled":
        return None
    # metrics=False: an evaluation logs no metrics rows and leaves the training's alone
    return RunTracker(Path(run_dir), tcfg, config, _recorded_fingerprint(run_dir) or "unknown",
                      f"{config['algorithm']['name']}-eval", metrics=False)


def _recorded_summary(run_dir: Path) -> dict:
    """The run's summary.json ({} when there is none); a damaged one is a UserError."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return {}
    return read_json(summary, "Evaluate another run, or train this one again.")


def _recorded_fingerprint(run_dir: Path) -> str | None:
    fp = _recorded_summary(run_dir).get("fingerprint")
    return fp if isinstance(fp, str) else None


def print_table(result: dict) -> None:
    """The decoding table, logged as one block (so it is in the run's log too)."""
    s = result["settings"]
    lines = [f"\n[specbench] lossless decoding of the {result['algorithm']} run: "
             f"{s['num_prompts']} prompts ({s['samples']} turns), {s['max_new_tokens']} new "
             f"tokens, {s['dtype']} on {s['device']}",
             f"  {'method':22s}{'tau':>7s}{'tok/fwd':>8s}{'nodes':>11s}{'tok/s':>8s}"
             f"{'speedup':>9s}{'fwd':>6s}{'draft%':>8s}{'exact':>7s}"]
    for name, m in result["overall"].items():
        nodes = f"{m['draft_nodes_mean']:.1f}/{m['draft_nodes_max']}"
        lines.append(f"  {name:22s}{m['tau']:7.2f}{m['tokens_per_forward']:8.2f}{nodes:>11s}"
                     f"{m['tokens_per_s']:8.1f}{m['speedup']:9.2f}"
                     f"{m['target_forwards']:6d}{100 * m['draft_time_share']:7.1f}%"
                     f"{'yes' if m['exact'] else 'NO':>7s}")
    lines.append("  tau: mean tokens per verify step (accepted + 1, prefill excluded: EAGLE's "
                 "and Spec-Bench's); tok/fwd: tokens per target forward, prefill included; "
                 "nodes: draft nodes verified per step, mean/max; speedup: greedy's wall time "
                 f"over the method's, both in {s['dtype']} on {s['device']}")
    load = result.get("machine_load") or {}
    if load.get("loaded"):
        lines.append("  LOADED MACHINE: the speedups are not reliable ("
                     + "; ".join(load["reasons"]) + "). Re-run on an idle machine.")
    n = s["samples"]
    for name, m in list(result["overall"].items())[1:]:
        if m.get("tau_ci95"):
            lo, hi = m["tau_ci95"]
            slo, shi = m["speedup_ci95"]
            lines.append(f"  {name}: 95% CI over the {n} prompts (bootstrap): tau "
                         f"[{lo:.2f}, {hi:.2f}], speedup [{slo:.2f}, {shi:.2f}]")
    for name, m in result["overall"].items():
        if not m["exact"] and m.get("mismatches_per_1k_tokens") is not None:
            lines.append(f"  {name} differs from {s['dtype']} greedy: "
                         f"{m['mismatches_per_1k_tokens']:.2f} divergences per 1,000 tokens, "
                         f"the first at generated token {m['first_divergence']}")
    for name, m in result["overall"].items():
        rates = m.get("acceptance_by_position") or []
        if rates:
            shown = " ".join(f"{a:.2f}" for a in rates[:16]) + (" ..." if len(rates) > 16
                                                                 else "")
            lines.append(f"  acceptance by position, {name}: {shown}")
    cats = result["per_category"]
    if len(cats) > 1:
        names = list(result["overall"])[1:]
        lines.append(f"  tau per category: {'category':14s}"
                     + "".join(f"{n[:14]:>15s}" for n in names))
        for c, agg in cats.items():
            lines.append(f"  {'':18s}{c[:14]:14s}"
                         + "".join(f"{agg[n]['tau']:15.2f}" for n in names))
    log.info("\n".join(lines))


def main(argv=None) -> int:
    from specbench.host_memory import keep_freed_memory

    keep_freed_memory()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--num-prompts", type=int, default=None,
                   help="questions to decode (default: the run's decode.num_prompts)")
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
    p.add_argument("--label", default=None,
                   help="results go to eval-LABEL.json, listed in evals.json (default: the "
                        "date and time); the training-time eval.json is never overwritten")
    p.add_argument("--set", action="append", default=None, metavar="algorithm.KEY=VALUE",
                   dest="set_", help="override an algorithm setting that only changes decoding "
                   "(a tree shape, marked decoding=True); repeatable; recorded in the file")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the target's own modelling code (never read from the run)")
    args = p.parse_args(argv)
    run_dir = args.run_dir.resolve()  # W&B and the files need no working-directory context
    prompts = EMBEDDED_PROMPTS if args.prompts == "embedded:" else args.prompts
    over = {"num_prompts": args.num_prompts, "max_new_tokens": args.max_new_tokens,
            "prompts": prompts, "dtype": args.dtype}
    tracker = None
    try:
        result = evaluate(run_dir, over, args.device, args.model, label=args.label,
                          standalone=True, trust_remote_code=args.trust_remote_code,
                          algorithm_overrides=args.set_)
        # the W&B run starts only once there are results: a failed evaluation leaves none
        tracker = _eval_tracker(run_dir, args.tracker)
        if tracker is not None:
            tracker.log_eval(result)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if tracker is not None:
            tracker.finish()  # waits for W&B to write its offline file
    print_table(result)
    print(f"  written: {run_dir / result['file']} (listed in {run_dir / INDEX})")
    bad = [n for n, m in result["overall"].items() if not m["exact"]]
    if bad and result["settings"]["dtype"] == "float32":
        print(f"  MISMATCH against greedy in fp32: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
