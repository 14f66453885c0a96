"""``python -m specbench.compare ... --wandb``: the comparison as a W&B run of the runs' group.

The run (``job_type="compare"``) holds every table of the report as a ``wandb.Table``, the
plots as images, the whole report page as HTML and the headline lines in its summary. Its group
is the compared runs' W&B group when they share one fingerprint; otherwise (seed repeats, a
``--tune`` grid) ``compare.<hash of the fingerprints>``, and the config lists every group.
"""

from __future__ import annotations

import os
import re
import warnings

from specbench.io import stable_hash
from specbench.tracking import group_name


def run_group(run) -> str:
    return group_name(run.controlled, run.fingerprint)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:60] or "table"


def headline(blocks) -> list[str]:
    """The report's first screen: the paragraphs right under its title."""
    lines = []
    for b in blocks[1:]:
        if b[0] != "p":
            break
        lines.append(b[1])
    return lines


def log_comparison(res: dict, project: str = "specbench", entity: str | None = None,
                   mode: str = "offline") -> dict:
    """Log ``compare()``'s result; returns ``{"mode", "group", "run_id", "dir"}`` (or an
    ``error`` when W&B could not log: the local report is written either way)."""
    runs, out = res["runs"], res["out"]
    groups = sorted({run_group(r) for r in runs})
    group = groups[0] if len(groups) == 1 else "compare." + stable_hash(groups)[:12]
    info = {"mode": mode, "group": group}
    try:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        run = wandb.init(project=project, entity=entity, group=group, job_type="compare",
                         name=f"compare/{out.resolve().name}", dir=str(out), mode=mode,
                         config={"runs": [r.name for r in runs], "groups": groups,
                                 "algorithms": sorted({r.algorithm for r in runs})},
                         reinit="finish_previous")
        tables, seen = {}, set()
        for b in res["blocks"]:
            if b[0] == "table":
                _, title, headers, rows, _ = b
                key = slug(title or "table")
                while key in seen:
                    key += "_"
                seen.add(key)
                tables[f"comparison/{key}"] = wandb.Table(columns=list(headers),
                                                          data=[list(map(str, r)) for r in rows])
        images = {f"comparison/plot/{slug(b[1])}": wandb.Image(str(b[2]), caption=b[1])
                  for b in res["blocks"] if b[0] == "img"}
        page = wandb.Html((out / "report.html").read_text())
        run.log({**tables, **images, "comparison/report": page})
        run.summary.update({"comparison/runs": len(runs), "comparison/groups": len(groups),
                            "comparison/headline": "\n".join(headline(res["blocks"]))})
        info.update(run_id=run.id, dir=str(run.dir))
        run.finish()
        wandb.teardown()
    except Exception as err:  # the report is on disk: W&B is extra
        warnings.warn(f"W&B could not log the comparison ({type(err).__name__}: {err}); the "
                      f"report in {out} is complete.", stacklevel=2)
        info["error"] = f"{type(err).__name__}: {err}"
    return info
