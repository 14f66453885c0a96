"""Compare finished runs fairly: ranked tables, fairness notes, seed repeats, plots, one report.

    python -m specbench.compare multirun/2026-01-01/12-00-00            # a sweep directory
    python -m specbench.compare outputs/run-a outputs/run-b --out cmp   # single runs
    python -m specbench.compare runs/ --allow-mismatch                  # one table, with warnings
    python -m specbench.compare runs/ --format csv > table.csv          # print CSV, not a table
    python -m specbench.compare multirun/lr_matched --tune trainer.lr   # each algorithm at best lr

Arguments are run directories (with a ``summary.json``) or directories holding runs at any depth
(a sweep). Output goes to ``--out``; by default ``<sweep>/comparison/`` when the one argument is
a sweep directory, else ``./comparison/``. It holds ``comparison.md``, ``comparison.csv``, the
plots (PNG) and ``report.html`` (self-contained: plots inline, no external resources).

Rules:

- Runs are grouped by their controlled settings (``summary.json``'s ``controlled`` section,
  flattened, plus the dataset sha256 and the global batch: what the fingerprint hashes) with
  ``trainer.seed`` left out. Seed is the *repeat key*: runs that differ only in seed are
  repeats of one experiment, not different experiments. Runs of different groups are never
  ranked together; each pair of groups is reported with the keys that differ
  ('not comparable: trainer.lr 0.003 vs 0.001'). ``--allow-mismatch`` ranks all runs in one
  table and names the differing keys (against the largest group) in a ``warning`` column.
- Within a group runs are ranked by decoding tau of their best draft method (``eval.json``,
  overall) when every run of the group has one, decoded with equal settings (eval.json's
  ``settings``: prompts, their number, length, dtype, baseline settings; not the device); else
  by held-out ``tau_sim``, with a notice saying why.
- Runs of a group with identical algorithm settings are aggregated into mean +- sample std (n).
  For the top two settings by mean, the difference is 'significant' when
  ``|mean_a - mean_b| > std_a + std_b``, else 'within seed spread' (unknown when either has
  fewer than two seeds).
- ``--tune KEY[,KEY...]`` (an equal tuning budget): those controlled keys are left out of the
  grouping like the seed. Within a group, every algorithm config (algorithm + its settings)
  should have runs at the same grid of values (a missing value is a fairness warning: unequal
  tuning budget); for each config the value with the best mean ranking metric over seeds is
  selected, and the configs are ranked at their best ('trainer.lr=0.003 (best of 0.001, 0.003,
  0.01)'), with a sub-table of every (config, value).
- Runs whose status is not ``completed``, jobs without a ``summary.json`` (Hydra job folders,
  or failed jobs listed in a ``sweep.json``) are listed as failed, with their error, and not
  ranked. So are completed runs with a NaN or infinite metric (``summary.json`` train and
  eval_split, ``eval.json`` overall and per_category: NaN loss means NaN weights, whose top-1
  and tau mean nothing), and runs with a damaged file (not JSON, not UTF-8, the wrong shape, a
  cut-off ``metrics.jsonl`` row): one bad run never stops the comparison of the others. Each
  run left out gets a line on stderr saying why. Missing values are shown as '-'.
- Text from the runs' files (run names, errors, settings) is made inert: HTML-escaped, and in
  ``comparison.md`` also without links, emphasis or table breaks; ``comparison.csv`` cells a
  spreadsheet would run as formulas (first character = + - @) are prefixed with '.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import re
import statistics
import sys
from pathlib import Path

from specbench.errors import UserError
from specbench.fairness import flatten

BASELINES = ("autoregressive", "prompt_lookup", "lookahead")
REPEAT_KEY = "trainer.seed"
NA = "-"


# ---------------------------------------------------------------------------------- loading

def json_type(v) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(v), "null" if v is None else "number")


def read_json(path: Path, must_be_object=False):
    """A JSON file's content; a damaged or mistyped file is a UserError naming it."""
    fix = "Remove the run from the arguments, or re-run it."
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {err.start}): the file "
                        f"is damaged. {fix}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} could not be read as JSON ({err}). {fix}") from None
    if must_be_object and not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {json_type(data)}, not an object (a dict of "
                        f"fields): it was not written by specbench, or is damaged. {fix}")
    return data


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows; a damaged file (not UTF-8, a row that is not a JSON object, the last
    row cut off) is a UserError naming the line."""
    fix = "The file is damaged: remove the run from the arguments, or re-run it."
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UserError(f"{path} line {line} is not UTF-8 text (bad byte at offset "
                        f"{err.start}). {fix}") from None
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            cut = " (cut off: the file ends in the middle of a row)" if i == len(lines) else ""
            raise UserError(f"{path} line {i} is not a JSON row{cut}: {err}. {fix}") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {i} is a JSON {json_type(row)}, not a row of "
                            f"metrics (an object). {fix}")
        rows.append(row)
    return rows


def dig(d, path: str):
    """``dig(summary, 'train.flops.total')``: a nested value, or None."""
    for k in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def leaves(v, path: str):
    """(dotted path, value) of every value in nested dicts and lists."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from leaves(x, f"{path}[{i}]")
    else:
        yield path, v


def check_shape(d: Path, s: dict, cfg: dict, ev) -> None:
    """The fields compare reads have the types it expects (else a UserError naming them)."""
    bad = []
    for key in ("controlled", "algorithm_config", "train", "eval_split", "checklist", "dataset"):
        if s.get(key) is not None and not isinstance(s[key], dict):
            bad.append(f"summary.json '{key}' is a JSON {json_type(s[key])}, not an object")
    if cfg.get("algorithm") is not None and not isinstance(cfg["algorithm"], dict):
        bad.append(f"config.json 'algorithm' is a JSON {json_type(cfg['algorithm'])}")
    for key in ("tau_sim", "loss"):
        v = dig(s, f"eval_split.{key}")
        if v is not None and not is_number(v):
            bad.append(f"summary.json eval_split.{key} is {v!r}, not a number")
    top1 = dig(s, "eval_split.top1")
    if top1 is not None and not (isinstance(top1, list) and all(map(is_number, top1))):
        bad.append(f"summary.json eval_split.top1 is {short(top1)}, not a list of numbers")
    if ev is not None:
        for key in ("overall", "per_category", "settings"):
            if ev.get(key) is not None and not isinstance(ev[key], dict):
                bad.append(f"eval.json '{key}' is a JSON {json_type(ev[key])}, not an object")
        for cat, ms in ((ev.get("per_category") or {}) if not bad else {}).items():
            if not isinstance(ms, dict) or not all(isinstance(v, dict) for v in ms.values()):
                bad.append(f"eval.json per_category.{cat} is not an object of methods")
        for m, v in ((ev.get("overall") or {}) if not bad else {}).items():
            if not isinstance(v, dict):
                bad.append(f"eval.json overall.{m} is a JSON {json_type(v)}, not an object")
                continue
            bad += [f"eval.json overall.{m}.{k} is {v[k]!r}, not a number"
                    for k in ("tau", "speedup") if v.get(k) is not None and not is_number(v[k])]
    if bad:
        raise UserError(f"{d}: {'; '.join(bad[:3])}. The run's files are not in the form "
                        "specbench writes (damaged, or edited by hand): remove the run from the "
                        "arguments, or re-run it.")


def non_finite(r: dict) -> str | None:
    """The first NaN or infinite metric of a run ('summary.json eval_split.loss = nan'), or None:
    NaN loss means NaN weights, and then its accuracy figures (top-1, tau) mean nothing."""
    ev = r["eval"] or {}
    for where, v in (("summary.json train", r["summary"].get("train")),
                     ("summary.json eval_split", r["summary"].get("eval_split")),
                     ("eval.json overall", ev.get("overall")),
                     ("eval.json per_category", ev.get("per_category"))):
        for path, x in leaves(v, where):
            if isinstance(x, float) and not math.isfinite(x):
                return f"{path} = {x}"
    return None


def load_run(d: Path) -> dict:
    """A run's files, read and checked (a UserError says what is wrong). A run that did not
    complete is returned with its status and error only: its other files are not read."""
    s = read_json(d / "summary.json", must_be_object=True)
    r = {"dir": d, "name": d.name, "status": str(s.get("status", "?")), "error": s.get("error")}
    if r["status"] != "completed":
        return r
    cfg = read_json(d / "config.json", True) if (d / "config.json").is_file() else {}
    ev = read_json(d / "eval.json", True) if (d / "eval.json").is_file() else None
    check_shape(d, s, cfg, ev)
    metrics = read_metrics(d / "metrics.jsonl") if (d / "metrics.jsonl").is_file() else []
    controlled = s.get("controlled")
    if controlled is None and cfg:  # an old summary: take it from the resolved config
        from omegaconf import OmegaConf

        from specbench.fairness import controlled_variables
        controlled = controlled_variables(OmegaConf.create(cfg))
    flat = flatten(controlled or {})
    flat["dataset.sha256"] = dig(s, "checklist.dataset_sha256") or dig(s, "dataset.sha256")
    flat["checklist.global_batch"] = dig(s, "checklist.global_batch")
    alg = str(s.get("algorithm") or dig(cfg, "algorithm.name") or "?")
    settings = {k: v for k, v in (s.get("algorithm_config") or cfg.get("algorithm") or {}).items()
                if k != "name"}
    fp = s.get("fingerprint")
    r.update({"algorithm": alg, "fingerprint": None if fp is None else str(fp), "settings": settings,
              "controlled": flat, "seed": flat.get(REPEAT_KEY), "summary": s, "eval": ev,
              "metrics": metrics, "methods": {}, "categories": {}})
    if ev:  # method names without the algorithm prefix: medusa_tree -> tree
        bare = lambda m: m[len(alg) + 1:] if m.startswith(alg + "_") else m
        r["methods"] = {bare(m): v for m, v in (ev.get("overall") or {}).items()}
        r["categories"] = {c: {bare(m): v for m, v in ms.items()}
                           for c, ms in (ev.get("per_category") or {}).items()}
    drafts = {m: v.get("tau") for m, v in r["methods"].items()
              if m not in BASELINES and v.get("tau") is not None}
    r["best_method"] = max(drafts, key=drafts.get) if drafts else None
    r["decode_tau"] = drafts.get(r["best_method"])
    r["tau_sim"] = dig(s, "eval_split.tau_sim")
    return r


def sweep_failures(root: Path, run_dirs: set) -> list[dict]:
    """Jobs that left no summary.json: from sweep.json files and Hydra job folders."""
    out, seen = [], set(run_dirs)
    for sj in sorted(root.rglob("sweep.json")) if root.is_dir() else []:
        try:
            data = read_json(sj)
        except UserError as err:  # its jobs are not listed; the runs are still compared
            print(f"note: {err}", file=sys.stderr)
            continue
        jobs = data.get("jobs", []) if isinstance(data, dict) else data
        for job in jobs if isinstance(jobs, list) else []:
            if not isinstance(job, dict):
                continue
            d = sj.parent / str(job.get("dir", ""))
            if job.get("dir") and d.resolve() in seen:
                continue
            seen.add(d.resolve())
            out.append({"name": str(job.get("dir") or job.get("overrides") or "?"),
                        "status": job.get("status") or "no summary.json",
                        "error": job.get("error"), "overrides": job.get("overrides")})
    for hydra in sorted(root.rglob(".hydra")) if root.is_dir() else []:
        d = hydra.parent.resolve()
        if d not in seen and not (d / "summary.json").is_file():
            seen.add(d)
            ov = hydra / "overrides.yaml"
            out.append({"name": hydra.parent.name, "status": "no summary.json",
                        "error": "crashed before writing summary.json, or still running",
                        "overrides": ov.read_text().strip() if ov.is_file() else None})
    return out


def collect(paths) -> tuple[list[dict], list[dict], Path | None]:
    """All runs under ``paths``, the failed jobs, and the sweep directory when there is one."""
    if not paths:
        raise UserError("give at least one run directory or sweep directory.")
    # a run's file given instead of its folder
    paths = [p.parent if p.name in ("summary.json", "eval.json", "config.json") and p.is_file()
             else p for p in map(Path, paths)]
    dirs, failed = [], []
    for p in paths:
        if not p.exists():
            raise UserError(f"{p} does not exist. Pass run directories (each holds the "
                            "summary.json written by python -m specbench, e.g. "
                            "outputs/<date>/<time>-medusa) or sweep directories containing "
                            "them (e.g. multirun/<date>/<time>).")
        found = [p] if (p / "summary.json").is_file() else \
            sorted({f.parent for f in p.rglob("summary.json")}) if p.is_dir() else []
        fails = sweep_failures(p, {d.resolve() for d in found})
        if not found:
            listed = "; ".join(f"{f['name']}: {f['error'] or f['status']}" for f in fails[:5])
            raise UserError(f"{p} contains no finished specbench runs (no summary.json in it or "
                            "below it)" + (f"; its failed jobs: {listed}" if listed else "")
                            + ". Pass run directories written by python -m specbench (they hold "
                            "summary.json, metrics.jsonl, config.json) or a sweep directory "
                            "that contains them.")
        dirs += [d for d in found if d.resolve() not in {x.resolve() for x in dirs}]
        failed += fails
    runs, unreadable = [], []
    for d in dirs:  # one damaged run is left out, not the end of the comparison
        try:
            runs.append(load_run(d))
        except UserError as err:
            unreadable.append({"dir": d, "name": d.name, "status": "unreadable",
                               "error": str(err)})
    if len(dirs) > 1:  # names relative to the runs' common folder: unique, short
        root = Path(os.path.commonpath([d.resolve() for d in dirs]))
        for r in runs + unreadable:
            rel = r["dir"].resolve().relative_to(root).as_posix()
            r["name"] = rel if rel != "." else r["dir"].name
    sweep = paths[0] if len(paths) == 1 and not (paths[0] / "summary.json").is_file() else None
    return runs, unreadable + failed, sweep


# ---------------------------------------------------------------------------------- analysis

def group_key(r: dict, ignore=(REPEAT_KEY,)) -> str:
    return json.dumps({k: v for k, v in r["controlled"].items() if k not in ignore},
                      sort_keys=True, default=str)


def short(v) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 24 else s[:12] + "…"


def diff_keys(a: dict, b: dict, ignore=(REPEAT_KEY,)) -> list[str]:
    miss = object()
    return [k for k in sorted((set(a) | set(b)) - set(ignore)) if a.get(k, miss) != b.get(k, miss)]


def differences(a: dict, b: dict, ignore=(REPEAT_KEY,)) -> list[str]:
    """'trainer.lr 0.003 vs 0.001' for each controlled key (seed aside) that differs."""
    return [f"{k} {short(a.get(k, NA))} vs {short(b.get(k, NA))}"
            for k in diff_keys(a, b, ignore)]


def mean_std(xs) -> tuple:
    """Mean, sample std (None under two values) and count of the finite numbers in ``xs``."""
    xs = [x for x in xs if is_number(x) and math.isfinite(x)]
    if not xs:
        return None, None, 0
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None, len(xs)


def eval_settings(r: dict) -> dict:
    """eval.json's settings that can change tau (not the free-text description, not the device)."""
    return {k: v for k, v in (dig(r["eval"], "settings") or {}).items()
            if k not in ("decoding", "device")}


def rank_metric(runs) -> str:
    """Decoding tau when every run has one, measured with the same decoding settings."""
    if any(r["decode_tau"] is None for r in runs):
        return "tau_sim"
    same = len({json.dumps(eval_settings(r), sort_keys=True, default=str) for r in runs}) == 1
    return "decoding tau" if same else "tau_sim"


def score(r: dict, metric: str):
    return r["decode_tau"] if metric == "decoding tau" else r["tau_sim"]


def ranked(runs, metric) -> list[dict]:
    return sorted(runs, key=lambda r: (score(r, metric) is None, -(score(r, metric) or 0),
                                       r["name"]))


def config_key(r: dict) -> str:
    """An algorithm config: the algorithm and its settings."""
    return json.dumps([r["algorithm"], r["settings"]], sort_keys=True, default=str)


def aggregate(rs, metric, label) -> dict:
    """Runs of one config (and tuned value) over seeds: mean +- std of the metric and more."""
    m, s, n = mean_std(score(r, metric) for r in rs)
    return {"config": label(rs[0]), "runs": rs, "n": n, "mean": m, "std": s,
            "seeds": sorted((r["seed"] for r in rs), key=str),
            "tau_sim": mean_std(r["tau_sim"] for r in rs),
            "eval_loss": mean_std(dig(r["summary"], "eval_split.loss") for r in rs)}


def repeats(runs, metric, label) -> tuple[list[dict], str | None]:
    """Runs with identical algorithm settings aggregated over seeds, best mean first, and the
    verdict on the top two (see the module docstring for the rule)."""
    configs: dict[str, list] = {}
    for r in runs:
        configs.setdefault(config_key(r), []).append(r)
    rows = [aggregate(rs, metric, label) for rs in configs.values()]
    rows.sort(key=lambda c: (c["mean"] is None, -(c["mean"] or 0)))
    return rows, top_two(rows, metric)


def top_two(rows, metric) -> str | None:
    """The verdict on the first two rows (best mean first): significant or within seed spread."""
    if len(rows) < 2 or rows[1]["mean"] is None:
        return None
    a, b = rows[0], rows[1]
    diff = a["mean"] - b["mean"]
    if a["std"] is None or b["std"] is None:
        verdict = "unknown (needs at least two seeds of each)"
    elif abs(diff) > a["std"] + b["std"]:
        verdict = "significant"
    else:
        verdict = "within seed spread"
    return (f"{a['config']} vs {b['config']}: {metric} difference {diff:.3f}, seed "
            f"spread {fmt_num(a['std'], 3)} + {fmt_num(b['std'], 3)}: {verdict}")


# ---------------------------------------------------------------------------------- tuning

def tuned_value(r: dict, tune) -> tuple:
    """The run's values of the tuned keys (hashable: a list or dict value as its JSON)."""
    return tuple(v if v is None or isinstance(v, (str, int, float, bool))
                 else json.dumps(v, sort_keys=True, default=str)
                 for v in (r["controlled"].get(k) for k in tune))


def value_order(v: tuple):
    """Sort key of a tuned value: numbers by size, anything else by its text, after numbers."""
    return tuple((0, x, "") if isinstance(x, (int, float)) and not isinstance(x, bool)
                 else (1, 0, json.dumps(x, default=str)) for x in v)


def fmt_value(v: tuple) -> str:
    return short(v[0]) if len(v) == 1 else "(" + ", ".join(short(x) for x in v) + ")"


def fmt_tuned(tune, v: tuple) -> str:
    """'trainer.lr=0.003' (several keys: space-separated)."""
    return " ".join(f"{k}={short(x)}" for k, x in zip(tune, v))


def tuning(runs, metric, tune, label) -> dict:
    """Equal tuning budget within one group: every (config, tuned value) aggregated over seeds,
    each config's best value (highest mean ``metric``; on a tie the first in the grid), the
    configs ranked at their best, and what each config lacks of the group's grid."""
    grid = sorted({tuned_value(r, tune) for r in runs}, key=value_order)
    configs: dict[str, list] = {}
    for r in runs:
        configs.setdefault(config_key(r), []).append(r)
    best = []
    for rs in configs.values():
        values = sorted({tuned_value(r, tune) for r in rs}, key=value_order)
        mine = []
        for v in values:
            cell = aggregate([r for r in rs if tuned_value(r, tune) == v], metric, label)
            cell.update(value=v, best=False)
            mine.append(cell)
        scored = [c for c in mine if c["mean"] is not None]
        top = max(scored, key=lambda c: c["mean"]) if scored else None  # max keeps the first
        for c in mine:
            c["best"] = c is top
            for r in c["runs"]:
                r["tuned_best"] = c is top
        row = dict(top) if top else dict(aggregate(rs, metric, label), value=None)
        row.update(grid=values, missing=[v for v in grid if v not in values], cells=mine,
                   tuned=(fmt_tuned(tune, top["value"]) if top else NA)
                   + f" (best of {', '.join(fmt_value(v) for v in values)})")
        best.append(row)
    best.sort(key=lambda c: (c["mean"] is None, -(c["mean"] or 0)))
    return {"keys": list(tune), "grid": grid, "best": best,
            "cells": [c for b in best for c in b["cells"]], "verdict": top_two(best, metric)}


def hydra_overrides(d: Path) -> list[str]:
    """Keys a run's Hydra record says were swept or overridden (``.hydra/``)."""
    keys = []
    ov = d / ".hydra" / "overrides.yaml"
    hy = d / ".hydra" / "hydra.yaml"
    try:
        import yaml

        if ov.is_file():
            keys += [str(o).split("=", 1)[0] for o in yaml.safe_load(ov.read_text()) or []]
        if hy.is_file():
            params = dig(yaml.safe_load(hy.read_text()), "hydra.sweeper.params")
            keys += list(params or {})
    except Exception:  # a hint only: an unreadable record gives none
        pass
    return keys


def swept_keys(paths, runs) -> set[str]:
    """Config keys the given sweeps swept: ``sweep.json``'s ``sweeper_params`` and its
    comma-valued ``sweep_overrides``, and the runs' own Hydra records (``.hydra/``)."""
    files = set()
    for p in map(Path, paths):
        if p.is_dir():
            files |= set(p.rglob("sweep.json"))
    for r in runs:
        files |= {d / "sweep.json" for d in (r["dir"].parent, r["dir"].parent.parent)
                  if (d / "sweep.json").is_file()}
    keys = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            keys += list(data.get("sweeper_params") or {})
            keys += [str(o).split("=", 1)[0] for o in data.get("sweep_overrides") or []
                     if "," in str(o).split("=", 1)[-1]]
    for r in runs:
        keys += hydra_overrides(r["dir"])
    return {k.lstrip("+~") for k in keys}


def check_tune(tune, runs) -> list[str]:
    """The --tune keys, validated against the runs' controlled keys."""
    keys = list(dict.fromkeys(k.strip() for part in tune for k in str(part).split(",")))
    if any(not k for k in keys):
        raise UserError("--tune takes controlled keys separated by commas, e.g. "
                        "--tune trainer.lr or --tune trainer.lr,trainer.warmup_ratio.")
    known = sorted({k for r in runs for k in r["controlled"]})
    for k in keys:
        if k == REPEAT_KEY:
            raise UserError(f"--tune {k}: the seed is already the repeat key (runs that differ "
                            "only in seed are averaged). Tune another controlled key, e.g. "
                            "trainer.lr.")
        if k.startswith("algorithm."):
            raise UserError(f"--tune {k}: algorithm settings are not controlled; runs with "
                            "different algorithm settings are already compared as separate "
                            "configs. --tune takes controlled keys, e.g. trainer.lr.")
        if k not in known:
            import difflib

            near = difflib.get_close_matches(k, known, n=3)
            raise UserError(f"--tune {k}: no run records a controlled key {k}"
                            + (f" (did you mean {', '.join(near)}?)" if near else "")
                            + ". Controlled keys look like trainer.lr, trainer.warmup_ratio, "
                            "data.max_rows.")
    return keys


# ---------------------------------------------------------------------------------- formatting

def fmt_num(v, digits=3) -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return NA if v is None else str(v)
    return f"{v:.{digits}f}"


def fmt_big(v) -> str:
    if not isinstance(v, (int, float)):
        return NA
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def fmt_ms(m, s, n, digits=3) -> str:
    if m is None:
        return NA
    return f"{m:.{digits}f} ± {fmt_num(s, digits)} (n={n})"


def category_tau(r, cat):
    """Decoding tau of the run's best draft method on one prompt category."""
    return ((r["categories"].get(cat) or {}).get(r["best_method"]) or {}).get("tau")


def exactness(r) -> str:
    if not r["methods"]:
        return NA
    bad = [f"{m} {v.get('mismatches', '?')}" for m, v in r["methods"].items()
           if not v.get("exact", True)]
    return "yes" if not bad else "NO: " + ", ".join(bad)


def method_order(runs) -> list[str]:
    names = {m for r in runs for m in r["methods"]}
    first = [m for m in (*BASELINES, "chain", "tree") if m in names]
    return first + sorted(names - set(first))


def describe_settings(runs) -> dict:
    """Per algorithm: the settings that vary between its runs (shown per run) and the rest."""
    out = {}
    for alg in sorted({r["algorithm"] for r in runs}):
        rs = [r for r in runs if r["algorithm"] == alg]
        keys = sorted({k for r in rs for k in r["settings"]})
        vary = [k for k in keys if len({json.dumps(r["settings"].get(k), default=str)
                                        for r in rs}) > 1]
        fixed = {k: rs[0]["settings"].get(k) for k in keys if k not in vary}
        out[alg] = (vary, fixed)
    return out


def run_columns(draft_methods, warning: bool, tune=()) -> list[str]:
    cols = ["rank", "run", "algorithm", "settings", "fingerprint", "seed"]
    cols += ["tuned"] if tune else []
    cols += ["params", "train FLOPs", "train s", "train tok/s", "train loss", "eval loss",
             "tau_sim"]
    for m in draft_methods:
        cols += [f"{m} tau", f"{m} speedup"]
    return cols + ["exact"] + (["warning"] if warning else [])


def run_row(r, rank, draft_methods, warning=None, tune=()) -> list[str]:
    s, t = r["summary"], r["summary"].get("train") or {}
    row = [str(rank), r["name"], r["algorithm"], r["settings_str"], r["fingerprint"] or NA,
           str(r["seed"]) if r["seed"] is not None else NA]
    row += [fmt_tuned(tune, tuned_value(r, tune)) + (" (best)" if r.get("tuned_best") else "")
            ] if tune else []
    row += [fmt_big(t.get("trainable_params")),
           fmt_big(dig(t, "flops.total")), fmt_num(t.get("train_time_s"), 0),
           fmt_num(t.get("tokens_per_s"), 0), fmt_num(t.get("final_loss"), 3),
           fmt_num(dig(s, "eval_split.loss"), 3), fmt_num(r["tau_sim"], 3)]
    for m in draft_methods:
        row += [fmt_num(dig(r["methods"], f"{m}.tau"), 3),
                fmt_num(dig(r["methods"], f"{m}.speedup"), 2)]
    return row + [exactness(r)] + ([warning or NA] if warning is not None else [])


# ---------------------------------------------------------------------------------- the report

def set_labels(runs) -> None:
    """``settings_str``: the algorithm settings that vary between runs of that algorithm."""
    settings = describe_settings(runs)
    for r in runs:
        vary = settings[r["algorithm"]][0]
        r["settings_str"] = " ".join(f"{k}={short(r['settings'].get(k))}" for k in vary) or NA


def config_label(r) -> str:
    return r["algorithm"] + ("" if r["settings_str"] == NA else " " + r["settings_str"])


def analyse(runs, allow_mismatch, tune=(), swept=frozenset()) -> tuple[list[dict], list[str]]:
    """Groups of comparable runs (ranked), and the fairness notices. ``tune``: controlled keys
    left out of the grouping, each config taken at its best value (see ``tuning``)."""
    set_labels(runs)
    ignore = (REPEAT_KEY, *tune)
    by_key: dict[str, list] = {}
    for r in runs:
        by_key.setdefault(group_key(r, ignore), []).append(r)
    groups, notes = [], []
    for i, rs in enumerate(by_key.values(), start=1):
        metric = rank_metric(rs)
        fps = sorted({r["fingerprint"] or NA for r in rs})
        groups.append({"id": i, "runs": ranked(rs, metric), "metric": metric,
                       "fingerprints": fps, "controlled": rs[0]["controlled"]})
        for r in rs:
            r["group"] = i
        if tune:
            t = groups[-1]["tuning"] = tuning(rs, metric, tune, config_label)
            grid = ", ".join(fmt_value(v) for v in t["grid"])
            for b in t["best"]:
                if b["missing"]:
                    notes.append(
                        f"WARNING: unequal tuning budget (group {i}): {b['config']} has no "
                        f"completed run at {', '.join(fmt_tuned(tune, v) for v in b['missing'])}"
                        f" (the group's grid of {', '.join(tune)}: {grid}). Its best is picked "
                        f"from {len(b['grid'])} value(s), another config's from up to "
                        f"{len(t['grid'])}: more tries favour the config that had them. Run the "
                        "missing values, or leave the extra runs out of the comparison.")
        if metric == "tau_sim" and all(r["decode_tau"] is not None for r in rs):
            diff = {d for r in rs for d in differences(flatten(eval_settings(rs[0]), "eval."),
                                                       flatten(eval_settings(r), "eval."))}
            notes.append(f"group {i}: the runs' eval.json were decoded with different settings "
                         f"({'; '.join(sorted(diff))}): ranked by held-out tau_sim instead of "
                         "decoding tau. Re-run python -m specbench.evaluate with equal settings.")
    differing = set()
    for a in groups:
        for b in groups[a["id"]:]:
            diff = differences(a["controlled"], b["controlled"], ignore)
            differing |= set(diff_keys(a["controlled"], b["controlled"], ignore))
            notes.append(f"not comparable: group {a['id']} vs group {b['id']}: " + "; ".join(diff))
        seeds: dict = {}
        for r in a["runs"]:  # one fingerprint per (seed, tuned value) expected
            seeds.setdefault(json.dumps([r["seed"], *tuned_value(r, tune)], default=str),
                             set()).add(r["fingerprint"])
        if any(len(f) > 1 for f in seeds.values()):
            notes.append(f"note: group {a['id']} has equal controlled settings but different "
                         f"fingerprints {', '.join(a['fingerprints'])} (recorded by different "
                         "specbench versions?)")
    if allow_mismatch and len(groups) > 1:
        ref = max(groups, key=lambda g: len(g["runs"]))
        for g in groups:
            for r in g["runs"]:
                r["warning"] = "reference group" if g is ref else \
                    "differs: " + "; ".join(differences(g["controlled"], ref["controlled"],
                                                        ignore))
        notes.insert(0, f"WARNING: --allow-mismatch: runs with different controlled settings "
                        f"are ranked together; the warning column names what differs from "
                        f"group {ref['id']} (the largest).")
    configs = {config_key(r) for r in runs}
    if not tune and differing and len(configs) > 1 and all(
            k.startswith("trainer.") and k in swept for k in differing):
        keys = ",".join(sorted(differing))
        notes.append(f"hint: the groups differ only in {keys}, which the sweep varied (a "
                     f"hyperparameter grid?). To rank each algorithm config at its best value "
                     f"over the same grid (an equal tuning budget), add --tune {keys}.")
    return groups, notes


def table(title, headers, rows, note=None) -> tuple:
    return ("table", title, headers, rows, note)


def build_blocks(runs, groups, notes, failed, allow_mismatch, tune=()) -> list[tuple]:
    settings = describe_settings(runs)
    set_labels(runs)
    label = config_label
    drafts = [m for m in method_order(runs) if m not in BASELINES]
    compact = lambda d: " ".join(f"{k}={short(v)}" for k, v in d.items()) or NA
    shared = "; ".join(f"{alg} (all runs): {compact(fixed)}"
                       for alg, (_, fixed) in settings.items())
    blocks = [("h1", "specbench comparison"),
              ("p", f"{len(runs)} completed runs in {len(groups)} group(s) of comparable "
                    f"controlled settings (seed is the repeat key and is not part of the "
                    f"grouping). Ranked by decoding tau of each run's best draft method when "
                    f"every run of a group has an eval.json decoded with equal settings, else "
                    f"by held-out tau_sim.")]
    keys = ", ".join(tune)
    if tune:
        blocks.append(("p", f"--tune {','.join(tune)} (an equal tuning budget): {keys} "
                            f"{'is' if len(tune) == 1 else 'are'} left out of the grouping "
                            f"like the seed; each algorithm config is taken "
                            f"at its best {keys} (highest mean ranking metric over seeds) and "
                            f"the configs are ranked at their best."))
    blocks += [("notice", n) for n in notes]
    if allow_mismatch and len(groups) > 1:
        metric = rank_metric(runs)
        rows = [run_row(r, i, drafts, r.get("warning", ""), tune) for i, r in
                enumerate(ranked(runs, metric), start=1)]
        blocks.append(("h2", f"All runs (--allow-mismatch), ranked by {metric}"))
        blocks.append(table("", run_columns(drafts, True, tune), rows, shared))
    for g in groups:
        rs = g["runs"]
        blocks.append(("h2", f"Group {g['id']}: fingerprint {', '.join(g['fingerprints'])}"))
        if tune:
            t, metric = g["tuning"], g["metric"]
            rows = [[str(i), b["config"], b["tuned"], fmt_ms(b["mean"], b["std"], b["n"]),
                     fmt_ms(*b["tau_sim"]), fmt_ms(*b["eval_loss"]),
                     " ".join(map(str, b["seeds"])) or NA] for i, b in
                    enumerate(t["best"], start=1)]
            blocks.append(table(f"Each algorithm config at its best {keys} (equal tuning "
                                f"budget), ranked by {metric}",
                                ["rank", "config", "tuned", f"{metric} (mean ± std)", "tau_sim",
                                 "eval loss", "seeds"], rows,
                                t["verdict"] and f"top two: {t['verdict']}"))
            rows = [[c["config"], fmt_value(c["value"]), str(len(c["runs"])),
                     " ".join(map(str, c["seeds"])), fmt_ms(c["mean"], c["std"], c["n"]),
                     fmt_ms(*c["tau_sim"]), fmt_ms(*c["eval_loss"]),
                     "best" if c["best"] else ""] for c in t["cells"]]
            blocks.append(table(f"Every (config, {keys}) (mean ± sample std over seeds)",
                                ["config", keys, "runs", "seeds", metric, "tau_sim",
                                 "eval loss", "selected"], rows))
        if not (allow_mismatch and len(groups) > 1):
            rows = [run_row(r, i, drafts, tune=tune) for i, r in enumerate(rs, start=1)]
            blocks.append(table(f"Ranked by {g['metric']}" + (" (every run)" if tune else ""),
                                run_columns(drafts, False, tune), rows, shared))
        if tune:
            configs, verdict = g["tuning"]["best"], g["tuning"]["verdict"]
        else:
            configs, verdict = repeats(rs, g["metric"], label)
        if not tune and any(c["n"] > 1 for c in configs):
            rows = [[c["config"], str(len(c["runs"])), " ".join(map(str, c["seeds"])),
                     fmt_ms(c["mean"], c["std"], c["n"]), fmt_ms(*c["tau_sim"]),
                     fmt_ms(*c["eval_loss"])] for c in configs]
            blocks.append(table("Seed repeats (mean ± sample std)",
                                ["config", "runs", "seeds", f"{g['metric']}", "tau_sim",
                                 "eval loss"], rows, verdict and f"top two: {verdict}"))
        g["configs"], g["verdict"] = configs, verdict
        cats = sorted({c for r in rs for c in r["categories"]})
        if cats:
            rows = [[str(i), r["name"], r["best_method"] or NA] +
                    [fmt_num(category_tau(r, c), 3) for c in cats]
                    for i, r in enumerate(rs, start=1)]
            blocks.append(table("Decoding tau per prompt category (best draft method)",
                                ["rank", "run", "method"] + cats, rows))
    if failed:
        blocks.append(("h2", "Failed or unfinished runs (not ranked)"))
        own = ("unreadable", "invalid")  # compare's own one-paragraph reasons: not cut
        blocks.append(table("", ["run", "status", "error", "overrides"],
                            [[f["name"], str(f["status"]),
                              short_error(f["error"], 1000 if f["status"] in own else 200),
                              short(f.get("overrides")) if f.get("overrides") else NA]
                             for f in failed]))
    return blocks


def short_error(e, limit=200) -> str:
    if not e:
        return NA
    e = " ".join(str(e).split())
    return e if len(e) <= limit else e[:limit] + "…"


def csv_rows(runs, groups, allow_mismatch, tune=()) -> tuple[list[str], list[list]]:
    methods = method_order(runs)
    cats = sorted({c for r in runs for c in r["categories"]})
    algkeys = sorted({f"{r['algorithm']}.{k}" for r in runs for k in r["settings"]})
    cols = ["group", "rank", "run", "status", "algorithm", "settings", "fingerprint", "seed"]
    cols += [*tune, "tuned_best"] if tune else []
    cols += ["trainable_params", "train_flops", "train_time_s", "train_tokens_per_s",
            "final_train_loss", "eval_loss", "tau_sim", "rank_metric", "score", "best_method"]
    cols += [f"{m}_{x}" for m in methods for x in ("tau", "speedup")]
    cols += ["exact"] + [f"tau_{c}" for c in cats] + algkeys
    cols += ["warning"] if allow_mismatch else []
    if allow_mismatch and len(groups) > 1:  # ranked as in the one table
        metric = rank_metric(runs)
        groups = [{"id": "all", "runs": ranked(runs, metric), "metric": metric}]
    out = []
    for g in groups:
        for i, r in enumerate(g["runs"], start=1):
            s, t = r["summary"], r["summary"].get("train") or {}
            row = [r["group"], i, r["name"], r["status"], r["algorithm"], r["settings_str"],
                   r["fingerprint"], r["seed"]]
            row += [*tuned_value(r, tune), "yes" if r.get("tuned_best") else "no"] if tune else []
            row += [t.get("trainable_params"), dig(t, "flops.total"),
                   t.get("train_time_s"), t.get("tokens_per_s"), t.get("final_loss"),
                   dig(s, "eval_split.loss"), r["tau_sim"], g["metric"], score(r, g["metric"]),
                   r["best_method"]]
            row += [dig(r["methods"], f"{m}.{x}") for m in methods for x in ("tau", "speedup")]
            row += [exactness(r)]
            row += [category_tau(r, c) for c in cats]
            prefix = r["algorithm"] + "."
            row += [r["settings"].get(k[len(prefix):]) if k.startswith(prefix) else None
                    for k in algkeys]
            row += [r.get("warning", "")] if allow_mismatch else []
            out.append([NA if v is None or v == "" else v for v in row])
    return cols, out


# ---------------------------------------------------------------------------------- plots

def make_plots(runs, groups, out: Path, tune=()) -> tuple[list[tuple[str, Path]], list[str]]:
    """PNG plots in ``out``; returns (title, path) for each written and a note for each skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install matplotlib)"]
    with matplotlib.rc_context({"text.parse_math": False}):  # a '$' in a run name is text
        return draw_plots(plt, runs, groups, out, tune)


def draw_plots(plt, runs, groups, out: Path, tune=()) -> tuple[list[tuple[str, Path]], list[str]]:
    multi = len(groups) > 1
    tag = lambda r: f"{r['name']} (g{r['group']})" if multi else r["name"]
    written, skipped = [], []

    def save(fig, name, title):
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append((title, out / name))

    curves = [(r, [(m["step"], m["train/loss"]) for m in r["metrics"]
                   if is_number(m.get("step")) and is_number(m.get("train/loss"))])
              for r in runs]
    if any(p for _, p in curves):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for r, pts in curves:
            if pts:
                ax.plot(*zip(*pts), label=tag(r))
        ax.set(xlabel="optimizer step", ylabel="train loss", title="Training loss")
        ax.legend(fontsize=7)
        save(fig, "loss_curves.png", "Training loss curves")
    else:
        skipped.append("loss curves skipped: no train/loss rows in any metrics.jsonl")

    acc = [(r, dig(r["summary"], "eval_split.top1") or []) for r in runs]
    if any(a for _, a in acc):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for r, a in acc:
            if a:
                ax.plot(range(1, len(a) + 1), a, marker="o", label=f"{tag(r)} [{r['algorithm']}]")
        ax.set(xlabel="draft position k (Medusa: head k, EAGLE-3: TTT step k)",
               ylabel="held-out top-1 accuracy", title="Per-position acceptance (held-out top-1)")
        ax.legend(fontsize=7)
        save(fig, "acceptance.png", "Per-position acceptance")
    else:
        skipped.append("acceptance plot skipped: no eval_split.top1 in any summary.json")

    if tune:  # the tuning curves, then each config at its best value only
        fig, axes = plt.subplots(len(groups), 1, figsize=(8, 4.5 * len(groups)), squeeze=False)
        for ax, g in zip(axes[:, 0], groups):
            t = g["tuning"]
            numeric = len(tune) == 1 and all(isinstance(v[0], (int, float)) and not
                                             isinstance(v[0], bool) for v in t["grid"])
            pos = {v: (v[0] if numeric else i) for i, v in enumerate(t["grid"])}
            for b in t["best"]:
                pts = [(pos[c["value"]], c["mean"], c["std"] or 0) for c in b["cells"]
                       if c["mean"] is not None]
                if pts:
                    line = ax.errorbar(*zip(*pts), marker="o", capsize=3, label=b["config"])
                    if b["value"] is not None:
                        ax.plot([pos[b["value"]]], [b["mean"]], marker="*", markersize=14,
                                color=line[0].get_color())
            xs = [x for x in pos.values()]
            if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
            ax.set_xticks(xs, [fmt_value(v) for v in t["grid"]])
            ax.minorticks_off()
            ax.set(xlabel=", ".join(tune), ylabel=g["metric"],
                   title=f"{g['metric']} vs {', '.join(tune)}" + (f" (group {g['id']})" if multi
                                                                 else "")
                   + "; mean ± std over seeds, * = selected")
            ax.legend(fontsize=7)
        save(fig, "tau_vs_tuned.png", "tau vs the tuned key (equal tuning budget)")
    param_runs = [r for r in runs if r.get("tuned_best")] if tune else runs
    swept = [(alg, k) for alg, (vary, _) in describe_settings(param_runs).items() for k in vary]
    if swept:
        fig, axes = plt.subplots(len(swept), 1, figsize=(8, 4 * len(swept)), squeeze=False)
        for ax, (alg, key) in zip(axes[:, 0], swept):
            rs = [r for r in param_runs if r["algorithm"] == alg]
            xs = sorted({json.dumps(r["settings"].get(key), default=str) for r in rs})
            values = [json.loads(x) for x in xs]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                xs = sorted(xs, key=json.loads)
                values = sorted(values)
            pos = {x: (json.loads(x) if numeric else i) for i, x in enumerate(xs)}
            for g in sorted({r["group"] for r in rs}):
                for field, marker in (("tau_sim", "o"), ("decode_tau", "s")):
                    pts = []
                    for x in xs:
                        m, s, n = mean_std(r[field] for r in rs if r["group"] == g and
                                           json.dumps(r["settings"].get(key), default=str) == x)
                        if n:
                            pts.append((pos[x], m, s or 0))
                    if pts:
                        name = "tau_sim (held-out)" if field == "tau_sim" else \
                            "decoding tau (best draft)"
                        ax.errorbar(*zip(*pts), marker=marker, capsize=3,
                                    label=name + (f", group {g}" if multi else ""))
            ax.set_xticks(list(pos.values()), [str(v) for v in values])
            ax.set(xlabel=f"algorithm.{key} ({alg})", ylabel="tau",
                   title=f"tau vs {key} ({alg}; mean ± std over seeds"
                   + (f"; each at its best {', '.join(tune)})" if tune else ")"))
            ax.legend(fontsize=7)
        save(fig, "tau_vs_param.png", "tau vs the swept parameter")
    else:
        skipped.append("tau-vs-parameter plot skipped: no algorithm setting varies between runs")

    ev = [r for r in runs if r["methods"]]
    if ev:
        methods = method_order(ev)
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(ev) * len(methods) / 3), 4.5))
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            pts = [(i + j * width, dig(r["methods"], f"{m}.speedup")) for i, r in enumerate(ev)]
            pts = [(x, y) for x, y in pts if y is not None]
            if pts:
                ax.bar(*zip(*pts), width=width, label=m)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(ev))],
                      [tag(r) for r in ev], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="speedup over greedy (its own eval)",
               title="Decoding speedup: baselines and draft methods")
        ax.legend(fontsize=7)
        save(fig, "speedup.png", "Decoding speedup")
    else:
        skipped.append("speedup plot skipped: no run has an eval.json")
    return written, skipped


# ---------------------------------------------------------------------------------- renderers

def md_text(s) -> str:
    """Text (run names, errors, settings: anything a run's files hold) made inert in Markdown:
    one line, HTML escaped, and no links, images, code, emphasis or table cell breaks."""
    s = html.escape(" ".join(str(s).splitlines()), quote=False)
    s = re.sub(r"([\\`*~\[\]|])", r"\\\1", s)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)  # not inside tau_sim


def to_markdown(blocks) -> str:
    e = md_text
    lines = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + e(b[1]), ""]
        elif kind == "p":
            lines += [e(b[1]), ""]
        elif kind == "notice":
            lines += [f"> **{e(b[1])}**", ""]
        elif kind == "img":
            lines += [f"![{e(b[1])}]({b[2].name})", ""]
        else:
            _, title, headers, rows, note = b
            lines += [f"**{e(title)}**", ""] if title else []
            lines.append("| " + " | ".join(map(e, headers)) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(map(e, row)) + " |" for row in rows]
            lines += ["", e(note)] if note else []
            lines.append("")
    return "\n".join(lines)


def csv_cell(v):
    """A CSV value safe to open in a spreadsheet or paste into HTML: text HTML-escaped, and
    text that a spreadsheet would run as a formula (= + - @ first) prefixed with '."""
    if not isinstance(v, str) or v == NA:
        return v
    v = html.escape(v, quote=False)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


CSS = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;
margin:8px 0 4px;font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px;text-align:left}
th{background:#eee}.notice{background:#fff3cd;border-left:4px solid #e0a800;padding:6px 10px;
margin:6px 0}.note{color:#555;font-size:12px;margin-bottom:14px}img{max-width:100%;display:block;
margin:10px 0 24px}"""


def to_html(blocks) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>specbench comparison"
             f"</title><style>{CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{e(b[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(b[1])}</p>")
        elif kind == "notice":
            parts.append(f"<div class='notice'>{e(b[1])}</div>")
        elif kind == "img":
            data = base64.b64encode(b[2].read_bytes()).decode()
            parts.append(f"<h3>{e(b[1])}</h3><img alt='{e(b[1])}' "
                         f"src='data:image/png;base64,{data}'>")
        else:
            _, title, headers, rows, note = b
            parts.append(f"<h3>{e(title)}</h3>" if title else "")
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                      for row in rows]
            parts.append("</table>" + (f"<div class='note'>{e(note)}</div>" if note else ""))
    return "\n".join(parts + ["</body></html>"])


def print_blocks(blocks, file=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, highlight=False)
    if not console.is_terminal:  # a file or a pipe: tables at their natural width
        console = Console(file=file, width=1000, highlight=False)
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            console.print("\n" + b[1], style="bold", markup=False)
        elif kind == "notice":
            console.print(b[1], style="yellow", markup=False)
        elif kind == "p":
            console.print(b[1], markup=False)
        elif kind == "img":
            console.print(f"plot: {b[2]}", markup=False)
        else:
            _, title, headers, rows, note = b
            t = Table(title=title or None, title_justify="left")
            for h in headers:
                t.add_column(h, overflow="fold")
            for row in rows:
                t.add_row(*(Text(str(c)) for c in row))
            console.print(t)
            if note:
                console.print(note, markup=False)


# ---------------------------------------------------------------------------------- entry points

def compare(paths, out=None, allow_mismatch=False, plots=True, tune=()) -> dict:
    """Write comparison.md, comparison.csv, the plots and report.html; return what was found.
    ``tune``: controlled keys to select each algorithm config's best value of (``--tune``)."""
    runs, failed, sweep = collect(paths)
    done, left_out = [], []
    for r in runs:
        bad = non_finite(r) if r["status"] == "completed" else None
        if r["status"] == "completed" and not bad:
            done.append(r)
        elif bad:
            left_out.append({"name": r["name"], "status": "invalid", "error": (
                f"non-finite metric {bad}: NaN or infinite loss or weights, so its accuracy "
                "figures (top-1, tau) are not valid")})
        else:
            left_out.append({"name": r["name"], "status": r["status"], "error": r["error"]})
    failed = left_out + failed
    for f in failed:  # one line per run left out, saying why
        if f["status"] in ("unreadable", "invalid"):
            why = f["error"]
        else:
            why = f"status {f['status']}" + (f" ({short_error(f['error'])})" if f["error"] else "")
        print(f"left out {f['name']}: {why}", file=sys.stderr)
    if not done:
        raise UserError("no usable run left: none of the runs given completed with readable "
                        "files and finite metrics ("
                        + "; ".join(f"{f['name']}: {f['status']}" for f in failed[:8])
                        + (", …" if len(failed) > 8 else "") + "). Finish unfinished runs "
                        "(trainer.resume=true), re-run failed or damaged ones, or pass other "
                        "runs.")
    out = Path(out) if out else (sweep / "comparison" if sweep else Path("comparison"))
    out.mkdir(parents=True, exist_ok=True)
    tune = tuple(check_tune(tune, done)) if tune else ()
    swept = set() if tune else swept_keys(paths, done)
    groups, notes = analyse(done, allow_mismatch, tune, swept)
    blocks = build_blocks(done, groups, notes, failed, allow_mismatch, tune)
    written, skipped = make_plots(done, groups, out, tune) if plots else ([], [])
    if written or skipped:
        blocks.append(("h2", "Plots"))
        blocks += [("img", title, path) for title, path in written]
        blocks += [("p", s) for s in skipped]
    (out / "comparison.md").write_text(to_markdown(blocks))
    cols, rows = csv_rows(done, groups, allow_mismatch, tune)
    with open(out / "comparison.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(map(csv_cell, cols))
        w.writerows([map(csv_cell, row) for row in rows])
    (out / "report.html").write_text(to_html(blocks))
    files = [out / "comparison.md", out / "comparison.csv", out / "report.html"]
    return {"runs": done, "groups": groups, "notes": notes, "failed": failed, "out": out,
            "blocks": blocks, "files": files + [p for _, p in written]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("paths", nargs="+", help="run directories or sweep directories")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: <sweep>/comparison or ./comparison)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="rank runs with different controlled settings in one table, with a "
                        "warning column")
    p.add_argument("--format", choices=["table", "markdown", "csv"], default="table",
                   help="what to print: a table (default), the markdown or the CSV")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--tune", metavar="KEY[,KEY...]", action="append", default=[],
                   help="an equal tuning budget: leave these controlled keys (e.g. trainer.lr) "
                        "out of the grouping and rank each algorithm config at its best value "
                        "of the same grid")
    args = p.parse_args(argv)
    try:
        res = compare(args.paths, args.out, args.allow_mismatch, plots=not args.no_plots,
                      tune=args.tune)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "table":
        print_blocks(res["blocks"])
    else:
        name = "comparison.md" if args.format == "markdown" else "comparison.csv"
        sys.stdout.write((res["out"] / name).read_text())
    info = sys.stdout if args.format == "table" else sys.stderr
    print("\nwritten: " + ", ".join(str(f) for f in res["files"]), file=info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
