"""Finding run directories and loading each into a ``Run``: read, checked, or left out with why."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from specbench.config import with_renamed_sections
from specbench.errors import UserError
from specbench.fairness import flatten
from specbench.io import json_type, read_jsonl

from .fmt import BASELINES, NA, REPEAT_KEY, is_number, short

FIX = "Remove the run from the arguments, or re-run it."


class _ReadByKey:
    """``run["name"]`` reads ``run.name``: the runs and failures compare returns were dicts."""

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class LeftOut(_ReadByKey):
    """A run or job that is not ranked: not completed, damaged, NaN, or without summary.json."""
    name: str
    status: str
    error: object = None
    overrides: object = None
    dir: Path | None = None


@dataclass
class Run(_ReadByKey):
    """One run directory's files, read and checked. A run that did not complete has only
    ``dir``, ``name``, ``status`` and ``error``: its other files are not read."""
    dir: Path
    name: str
    status: str
    error: object = None
    algorithm: str = "?"
    fingerprint: str | None = None
    settings: dict = field(default_factory=dict)  # algorithm settings, without 'name'
    controlled: dict = field(default_factory=dict)  # flattened, + dataset sha256, global batch
    seed: object = None
    summary: dict = field(default_factory=dict)
    eval: dict | None = None
    metrics: list = field(default_factory=list)  # metrics.jsonl rows
    methods: dict = field(default_factory=dict)  # eval.json overall, method names unprefixed
    categories: dict = field(default_factory=dict)  # eval.json per_category, the same
    best_method: str | None = None  # the draft method with the highest decoding tau
    decode_tau: float | None = None
    tau_sim: float | None = None
    old_tau: bool = False  # eval.json without settings.tau_definition: tau = tokens / forwards
    # written once by the analysis (stats.analyse, tuning.tune_group)
    group: int | None = None
    settings_str: str = NA  # the settings that vary between runs of its algorithm
    tuned_best: bool = False  # --tune: at its config's selected value
    warning: str | None = None  # --allow-mismatch: what differs from the reference group

    def tuned_value(self, tune) -> tuple:
        """The run's values of the tuned keys (hashable: a list or dict value as its JSON)."""
        return tuple(v if v is None or isinstance(v, (str, int, float, bool))
                     else json.dumps(v, sort_keys=True, default=str)
                     for v in (self.controlled.get(k) for k in tune))


# ---------------------------------------------------------------------------------- files

def read_json(path: Path, must_be_object=False):
    """A JSON file's content; a damaged or mistyped file is a UserError naming it."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {err.start}): the file "
                        f"is damaged. {FIX}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} could not be read as JSON ({err}). {FIX}") from None
    if must_be_object and not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {json_type(data)}, not an object (a dict of "
                        f"fields): it was not written by specbench, or is damaged. {FIX}")
    return data


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows; a damaged file (not UTF-8, a row that is not a JSON object, the last
    row cut off: a completed run wrote its rows whole) is a UserError naming the line."""
    return read_jsonl(path, "The file is damaged: remove the run from the arguments, or re-run "
                            "it.", cut_off_ok=False)


def dig(d, path: str):
    """``dig(summary, 'train.flops.total')``: a nested value, or None."""
    for k in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


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


# ---------------------------------------------------------------------------------- one run

def shape_problems(s: dict, cfg: dict, ev) -> list[str]:
    """The fields compare reads that do not have the types it expects."""
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
    if ev is None:
        return bad
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
    return bad


def check_shape(d: Path, s: dict, cfg: dict, ev) -> None:
    """The fields compare reads have the types it expects (else a UserError naming them)."""
    bad = shape_problems(s, cfg, ev)
    if bad:
        raise UserError(f"{d}: {'; '.join(bad[:3])}. The run's files are not in the form "
                        "specbench writes (damaged, or edited by hand): remove the run from the "
                        "arguments, or re-run it.")


def non_finite(r: Run) -> str | None:
    """The first NaN or infinite metric of a run ('summary.json eval_split.loss = nan'), or None:
    NaN loss means NaN weights, and then its accuracy figures (top-1, tau) mean nothing."""
    ev = r.eval or {}
    for where, v in (("summary.json train", r.summary.get("train")),
                     ("summary.json eval_split", r.summary.get("eval_split")),
                     ("eval.json overall", ev.get("overall")),
                     ("eval.json per_category", ev.get("per_category"))):
        for path, x in leaves(v, where):
            if isinstance(x, float) and not math.isfinite(x):
                return f"{path} = {x}"
    return None


def controlled_settings(s: dict, cfg: dict) -> dict:
    """What the fingerprint hashes, flattened: ``controlled``, dataset sha256, global batch.
    A run recorded before the rename of ``eval`` to ``decode`` shows its settings as decode.*,
    like a new one."""
    controlled = s.get("controlled")
    if controlled is None and cfg:  # an old summary: take it from the resolved config
        from omegaconf import OmegaConf

        from specbench.fairness import controlled_variables
        controlled = controlled_variables(OmegaConf.create(with_renamed_sections(cfg)))
    flat = flatten(with_renamed_sections(controlled or {}))
    flat["dataset.sha256"] = dig(s, "checklist.dataset_sha256") or dig(s, "dataset.sha256")
    flat["checklist.global_batch"] = dig(s, "checklist.global_batch")
    return flat


def load_run(d: Path, name: str | None = None) -> Run:
    """A run's files, read and checked (a UserError says what is wrong). A run that did not
    complete is returned with its status and error only: its other files are not read."""
    s = read_json(d / "summary.json", must_be_object=True)
    status = str(s.get("status", "?"))
    if status != "completed":
        return Run(d, name or d.name, status, s.get("error"))
    cfg = read_json(d / "config.json", True) if (d / "config.json").is_file() else {}
    ev = read_json(d / "eval.json", True) if (d / "eval.json").is_file() else None
    check_shape(d, s, cfg, ev)
    metrics = read_metrics(d / "metrics.jsonl") if (d / "metrics.jsonl").is_file() else []
    flat = controlled_settings(s, cfg)
    alg = str(s.get("algorithm") or dig(cfg, "algorithm.name") or "?")
    settings = {k: v for k, v in (s.get("algorithm_config") or cfg.get("algorithm") or {}).items()
                if k != "name"}
    fp = s.get("fingerprint")
    methods, categories = {}, {}
    if ev:  # method names without the algorithm prefix: <alg>_tree -> tree
        bare = lambda m: m[len(alg) + 1:] if m.startswith(alg + "_") else m
        methods = {bare(m): v for m, v in (ev.get("overall") or {}).items()}
        categories = {c: {bare(m): v for m, v in ms.items()}
                      for c, ms in (ev.get("per_category") or {}).items()}
    drafts = {m: v.get("tau") for m, v in methods.items()
              if m not in BASELINES and v.get("tau") is not None}
    best = max(drafts, key=drafts.get) if drafts else None
    return Run(d, name or d.name, status, s.get("error"), algorithm=alg,
               fingerprint=None if fp is None else str(fp), settings=settings, controlled=flat,
               seed=flat.get(REPEAT_KEY), summary=s, eval=ev, metrics=metrics, methods=methods,
               categories=categories, best_method=best, decode_tau=drafts.get(best),
               tau_sim=dig(s, "eval_split.tau_sim"),
               old_tau=bool(ev) and dig(ev, "settings.tau_definition") is None)


# ---------------------------------------------------------------------------------- many runs

def sweep_json_failures(root: Path, seen: set) -> list[LeftOut]:
    """Jobs a sweep.json lists that left no run directory among ``seen`` (added to it)."""
    out = []
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
            out.append(LeftOut(str(job.get("dir") or job.get("overrides") or "?"),
                               job.get("status") or "no summary.json", job.get("error"),
                               job.get("overrides")))
    return out


def sweep_failures(root: Path, run_dirs: set) -> list[LeftOut]:
    """Jobs that left no summary.json: from sweep.json files and Hydra job folders."""
    seen = set(run_dirs)
    out = sweep_json_failures(root, seen)
    for hydra in sorted(root.rglob(".hydra")) if root.is_dir() else []:
        d = hydra.parent.resolve()
        if d not in seen and not (d / "summary.json").is_file():
            seen.add(d)
            ov = hydra / "overrides.yaml"
            out.append(LeftOut(hydra.parent.name, "no summary.json",
                               "crashed before writing summary.json, or still running",
                               ov.read_text().strip() if ov.is_file() else None))
    return out


def find_runs(p: Path) -> tuple[list[Path], list[LeftOut]]:
    """The run directories at or below ``p``, and its failed jobs; none is a UserError."""
    if not p.exists():
        raise UserError(f"{p} does not exist. Pass run directories (each holds the "
                        "summary.json written by python -m specbench, e.g. "
                        "outputs/<date>/<time>-medusa) or sweep directories containing "
                        "them (e.g. multirun/<date>/<time>).")
    found = [p] if (p / "summary.json").is_file() else \
        sorted({f.parent for f in p.rglob("summary.json")}) if p.is_dir() else []
    fails = sweep_failures(p, {d.resolve() for d in found})
    if not found:
        listed = "; ".join(f"{f.name}: {f.error or f.status}" for f in fails[:5])
        raise UserError(f"{p} contains no finished specbench runs (no summary.json in it or "
                        "below it)" + (f"; its failed jobs: {listed}" if listed else "")
                        + ". Pass run directories written by python -m specbench (they hold "
                        "summary.json, metrics.jsonl, config.json) or a sweep directory "
                        "that contains them.")
    return found, fails


def run_names(dirs: list[Path]) -> dict[Path, str]:
    """Names relative to the runs' common folder (unique, short); one run: its folder name."""
    if len(dirs) <= 1:
        return {d: d.name for d in dirs}
    root = Path(os.path.commonpath([d.resolve() for d in dirs]))
    rel = {d: d.resolve().relative_to(root).as_posix() for d in dirs}
    return {d: r if r != "." else d.name for d, r in rel.items()}


def collect(paths) -> tuple[list[Run], list[LeftOut], Path | None]:
    """All runs under ``paths``, the failed jobs, and the sweep directory when there is one.
    A run whose files cannot be read is left out ('unreadable'), not the end of the comparison."""
    if not paths:
        raise UserError("give at least one run directory or sweep directory.")
    # a run's file given instead of its folder
    paths = [p.parent if p.name in ("summary.json", "eval.json", "config.json") and p.is_file()
             else p for p in map(Path, paths)]
    dirs, failed = [], []
    for p in paths:
        found, fails = find_runs(p)
        dirs += [d for d in found if d.resolve() not in {x.resolve() for x in dirs}]
        failed += fails
    names = run_names(dirs)
    runs, unreadable = [], []
    for d in dirs:
        try:
            runs.append(load_run(d, names[d]))
        except UserError as err:
            unreadable.append(LeftOut(names[d], "unreadable", str(err), dir=d))
    sweep = paths[0] if len(paths) == 1 and not (paths[0] / "summary.json").is_file() else None
    return runs, unreadable + failed, sweep


def usable(runs: list[Run]) -> tuple[list[Run], list[LeftOut]]:
    """The completed runs with finite metrics, and the others as left out ('invalid': NaN)."""
    done, left_out = [], []
    for r in runs:
        bad = non_finite(r) if r.status == "completed" else None
        if r.status == "completed" and not bad:
            done.append(r)
        elif bad:
            left_out.append(LeftOut(r.name, "invalid", (
                f"non-finite metric {bad}: NaN or infinite loss or weights, so its accuracy "
                "figures (top-1, tau) are not valid"), dir=r.dir))
        else:
            left_out.append(LeftOut(r.name, r.status, r.error, dir=r.dir))
    return done, left_out
