"""--tune: an equal tuning budget. Each algorithm config is taken at its best value of the same
grid of controlled keys (e.g. trainer.lr); the checks of the keys and of the grid."""

from __future__ import annotations

import json
from pathlib import Path

from specbench.errors import UserError

from .fmt import NA, REPEAT_KEY, fmt_tuned, fmt_value
from .runs import dig
from .stats import aggregate, by_config, top_two


def value_order(v: tuple):
    """Sort key of a tuned value: numbers by size, anything else by its text, after numbers."""
    return tuple((0, x, "") if isinstance(x, (int, float)) and not isinstance(x, bool)
                 else (1, 0, json.dumps(x, default=str)) for x in v)


def config_best(rs, metric, tune, label, grid) -> dict:
    """One config's runs: a cell per tuned value (aggregated over seeds) and the best of them
    (highest mean ``metric``; on a tie the first in the grid). Sets each run's ``tuned_best``."""
    values = sorted({r.tuned_value(tune) for r in rs}, key=value_order)
    cells = []
    for v in values:
        cell = aggregate([r for r in rs if r.tuned_value(tune) == v], metric, label)
        cell.update(value=v, best=False)
        cells.append(cell)
    scored = [c for c in cells if c["mean"] is not None]
    top = max(scored, key=lambda c: c["mean"]) if scored else None  # max keeps the first
    for c in cells:
        c["best"] = c is top
        for r in c["runs"]:
            r.tuned_best = c is top
    row = dict(top) if top else dict(aggregate(rs, metric, label), value=None)
    row.update(grid=values, missing=[v for v in grid if v not in values], cells=cells,
               tuned=(fmt_tuned(tune, top["value"]) if top else NA)
               + f" (best of {', '.join(fmt_value(v) for v in values)})")
    return row


def tuning(runs, metric, tune, label) -> dict:
    """Equal tuning budget within one group: every (config, tuned value) aggregated over seeds,
    each config's best value, the configs ranked at their best, and what each config lacks of
    the group's grid."""
    grid = sorted({r.tuned_value(tune) for r in runs}, key=value_order)
    best = [config_best(rs, metric, tune, label, grid) for rs in by_config(runs)]
    best.sort(key=lambda c: (c["mean"] is None, -(c["mean"] or 0)))
    return {"keys": list(tune), "grid": grid, "best": best,
            "cells": [c for b in best for c in b["cells"]], "verdict": top_two(best, metric)}


def tune_group(g: dict, members, tune, label) -> list[str]:
    """Sets the group's ``tuning`` (``members``: its runs in the order found); returns a
    fairness warning for each config that lacks a value of the group's grid."""
    t = g["tuning"] = tuning(members, g["metric"], tune, label)
    grid = ", ".join(fmt_value(v) for v in t["grid"])
    return [f"WARNING: unequal tuning budget (group {g['id']}): {b['config']} has no completed "
            f"run at {', '.join(fmt_tuned(tune, v) for v in b['missing'])} (the group's grid of "
            f"{', '.join(tune)}: {grid}). Its best is picked from {len(b['grid'])} value(s), "
            f"another config's from up to {len(t['grid'])}: more tries favour the config that "
            "had them. Run the missing values, or leave the extra runs out of the comparison."
            for b in t["best"] if b["missing"]]


# ---------------------------------------------------------------------------------- keys

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
        files |= {d / "sweep.json" for d in (r.dir.parent, r.dir.parent.parent)
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
        keys += hydra_overrides(r.dir)
    return {k.lstrip("+~") for k in keys}


def check_tune(tune, runs) -> list[str]:
    """The --tune keys, validated against the runs' controlled keys."""
    keys = list(dict.fromkeys(k.strip() for part in tune for k in str(part).split(",")))
    if any(not k for k in keys):
        raise UserError("--tune takes controlled keys separated by commas, e.g. "
                        "--tune trainer.lr or --tune trainer.lr,trainer.warmup_ratio.")
    known = sorted({k for r in runs for k in r.controlled})
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
