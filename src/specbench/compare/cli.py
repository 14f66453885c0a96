"""compare(): the whole comparison, files written; main(): python -m specbench.compare."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from specbench.errors import UserError

from .fmt import short_error
from .plots import make_plots
from .render import print_blocks, to_html, to_markdown, write_csv
from .report import analyse, build_blocks, csv_rows
from .runs import collect, usable
from .tuning import check_tune, swept_keys


def report_left_out(failed) -> None:
    """One line on stderr per run left out, saying why."""
    for f in failed:
        if f.status in ("unreadable", "invalid"):
            why = f.error
        else:
            why = f"status {f.status}" + (f" ({short_error(f.error)})" if f.error else "")
        print(f"left out {f.name}: {why}", file=sys.stderr)


def compare(paths, out=None, allow_mismatch=False, plots=True, tune=()) -> dict:
    """Write comparison.md, comparison.csv, the plots and report.html; return what was found.
    ``tune``: controlled keys to select each algorithm config's best value of (``--tune``)."""
    runs, failed, sweep = collect(paths)
    done, left_out = usable(runs)
    failed = left_out + failed
    report_left_out(failed)
    if not done:
        raise UserError("no usable run left: none of the runs given completed with readable "
                        "files and finite metrics ("
                        + "; ".join(f"{f.name}: {f.status}" for f in failed[:8])
                        + (", …" if len(failed) > 8 else "") + "). Finish unfinished runs "
                        "(trainer.resume=true), re-run failed or damaged ones, or pass other "
                        "runs.")
    out = Path(out) if out else (sweep / "comparison" if sweep else Path("comparison"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"--out {out} is (or lies under) a file, not a directory; pass a "
                        "directory for the comparison files.") from None
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
    write_csv(out / "comparison.csv", *csv_rows(done, groups, allow_mismatch, tune))
    (out / "report.html").write_text(to_html(blocks))
    files = [out / "comparison.md", out / "comparison.csv", out / "report.html"]
    return {"runs": done, "groups": groups, "notes": notes, "failed": failed, "out": out,
            "blocks": blocks, "files": files + [p for _, p in written]}


def parser() -> argparse.ArgumentParser:
    import specbench.compare

    p = argparse.ArgumentParser(prog="python -m specbench.compare",
                                description=specbench.compare.__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
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
    p.add_argument("--wandb", action="store_true",
                   help="also log the tables, plots and report as a W&B run (job type "
                        "'compare') in the compared runs' group")
    p.add_argument("--wandb-mode", choices=["offline", "online"], default="offline",
                   help="offline (default: sync later with `wandb sync`) or online")
    p.add_argument("--wandb-project", default="specbench", help="the W&B project")
    p.add_argument("--wandb-entity", default=None, help="the W&B entity (team or user)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
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
    if args.wandb:
        from .wandb_log import log_comparison

        w = log_comparison(res, args.wandb_project, args.wandb_entity, args.wandb_mode)
        if "error" not in w:
            print(f"W&B ({w['mode']}): group {w['group']}, run {w['run_id']} in {w['dir']}",
                  file=info)
    return 0
