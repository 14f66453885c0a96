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
  For the top two settings by mean, Welch's t-test over their seeds gives the p-value; the
  difference is 'significant' only when p < 0.05, and there is no verdict under 3 seeds of
  either ('one seed: no verdict').
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

# runs: loading into Run; stats: groups, ranking, seed statistics; tuning: --tune; report: the
# analysis and the report blocks, CSV rows; plots; render: Markdown, CSV, HTML, console; cli.
from .cli import compare, main
from .fmt import BASELINES, NA, REPEAT_KEY
from .plots import make_plots
from .render import csv_cell, md_text, print_blocks, to_html, to_markdown
from .report import analyse, build_blocks, csv_rows
from .runs import LeftOut, Run, collect, load_run, non_finite, read_json, read_metrics
from .stats import mean_std
from .tuning import check_tune, tuning

__all__ = ["BASELINES", "NA", "REPEAT_KEY", "LeftOut", "Run", "analyse", "build_blocks",
           "check_tune", "collect", "compare", "csv_cell", "csv_rows", "load_run", "main",
           "make_plots", "md_text", "mean_std", "non_finite", "print_blocks", "read_json",
           "read_metrics", "to_html", "to_markdown", "tuning"]
