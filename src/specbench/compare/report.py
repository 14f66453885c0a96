"""What the report says: the analysis (groups and fairness notices), then the report as blocks
(headings, paragraphs, notices, tables) that ``render`` writes as Markdown, HTML or a console
table, and the CSV's table of raw numbers.

A block is a tuple: ``("h1" | "h2" | "p" | "notice", text)``, ``("img", title, path)`` or
``("table", title, headers, rows, note)``."""

from __future__ import annotations

from .fmt import (
    BASELINES,
    NA,
    REPEAT_KEY,
    fmt_big,
    fmt_ms,
    fmt_num,
    fmt_tuned,
    fmt_value,
    short,
    short_error,
)
from .headline import headline_blocks
from .runs import Run, dig
from .stats import (
    comparability_notes,
    config_label,
    decoding_note,
    describe_settings,
    make_groups,
    mismatch_warning,
    rank_metric,
    ranked,
    repeats,
    score,
    set_labels,
    tune_hint,
)
from .tuning import tune_group


def analyse(runs, allow_mismatch, tune=(), swept=frozenset()) -> tuple[list[dict], list[str]]:
    """Groups of comparable runs (ranked, with their seed or tuning statistics: ``configs``,
    ``verdict``), and the fairness notices. ``tune``: controlled keys left out of the
    grouping, each config taken at its best value (see ``tuning.tuning``)."""
    set_labels(runs)
    ignore = (REPEAT_KEY, *tune)
    groups, notes = make_groups(runs, ignore), []
    for g in groups:
        members = [r for r in runs if r.group == g["id"]]  # in the order found
        if tune:
            notes += tune_group(g, members, tune, config_label)
            g["configs"], g["verdict"] = g["tuning"]["best"], g["tuning"]["verdict"]
        else:
            g["configs"], g["verdict"] = repeats(g["runs"], g["metric"], config_label)
        note = decoding_note(g, members)
        notes += [note] if note else []
    pair_notes, differing = comparability_notes(groups, ignore, tune)
    notes += pair_notes
    if allow_mismatch and len(groups) > 1:
        notes.insert(0, mismatch_warning(groups, ignore))
    hint = None if tune else tune_hint(runs, differing, swept)
    return groups, notes + ([hint] if hint else [])


# ---------------------------------------------------------------------------------- run rows

def category_tau(r: Run, cat):
    """Decoding tau of the run's best draft method on one prompt category."""
    return ((r.categories.get(cat) or {}).get(r.best_method) or {}).get("tau")


def horizon(r: Run) -> str:
    """The draft horizon (TTT depth, heads, block size) from the run's algorithm settings."""
    from specbench.algorithms import CONFIGS

    cls = CONFIGS.get(r.algorithm)
    return cls.horizon(r.settings) if cls is not None else ""


def features(r: Run) -> str:
    """The target features the draft read: decoder-layer outputs (0-based) and/or the final
    normed state; '' for a run recorded before summaries named them."""
    spec = r.summary.get("target_features")
    if not isinstance(spec, dict):
        return ""
    layers = spec.get("layers") or []
    parts = ([",".join(map(str, layers))] if layers else []) + (
        ["final"] if spec.get("final_hidden") else [])
    return " + ".join(parts) or "none"


def exactness(r: Run) -> str:
    if not r.methods:
        return NA
    bad = [f"{m} {v.get('mismatches', '?')}" for m, v in r.methods.items()
           if not v.get("exact", True)]
    return "yes" if not bad else "NO: " + ", ".join(bad)


def method_order(runs) -> list[str]:
    names = {m for r in runs for m in r.methods}
    first = [m for m in (*BASELINES, "chain", "tree", "block") if m in names]
    return first + sorted(names - set(first))


def run_columns(draft_methods, warning: bool, tune=()) -> list[str]:
    cols = ["rank", "run", "algorithm", "settings", "fingerprint", "seed"]
    cols += ["tuned"] if tune else []
    cols += ["params", "horizon", "features", "train FLOPs", "draft FLOPs", "train s",
             "train tok/s", "train loss", "eval loss", "tau_sim"]
    for m in draft_methods:
        cols += [f"{m} tau", f"{m} nodes", f"{m} speedup"]
    return cols + ["exact"] + (["warning"] if warning else [])


def run_row(r: Run, rank, draft_methods, warning=None, tune=()) -> list[str]:
    s, t = r.summary, r.summary.get("train") or {}
    row = [str(rank), r.name, r.algorithm, r.settings_str, r.fingerprint or NA,
           str(r.seed) if r.seed is not None else NA]
    row += [fmt_tuned(tune, r.tuned_value(tune)) + (" (best)" if r.tuned_best else "")
            ] if tune else []
    row += [fmt_big(t.get("trainable_params")), horizon(r) or NA, features(r) or NA,
            fmt_big(dig(t, "flops.total")), fmt_big(dig(t, "flops.draft_forward_backward")),
            fmt_num(t.get("train_time_s"), 0),
            fmt_num(t.get("tokens_per_s"), 0), fmt_num(t.get("final_loss"), 3),
            fmt_num(dig(s, "eval_split.loss"), 3), fmt_num(r.tau_sim, 3)]
    for m in draft_methods:
        tau = with_ci(fmt_num(dig(r.methods, f"{m}.tau"), 3), dig(r.methods, f"{m}.tau_ci95"))
        speed = with_ci(fmt_num(dig(r.methods, f"{m}.speedup"), 2),
                        dig(r.methods, f"{m}.speedup_ci95"))
        row += [tau + OLD_TAU_MARK if r.old_tau and tau != NA else tau, fmt_nodes(r, m),
                speed + LOADED_MARK if loaded(r) and speed != NA else speed]
    return row + [exactness(r)] + ([warning or NA] if warning is not None else [])


def with_ci(cell: str, ci) -> str:
    """``1.580 [1.52, 1.64]``: a figure with its 95% bootstrap interval over prompts
    (eval.json's ``*_ci95``), where the run recorded one."""
    if cell == NA or not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return cell
    return f"{cell} [{fmt_num(ci[0], 2)}, {fmt_num(ci[1], 2)}]"


# ---------------------------------------------------------------------------------- blocks

OLD_TAU_MARK = " (old tau)"
OLD_TAU_NOTE = ("(old tau): the run's eval.json was recorded before issue 11, and its tau is "
                "new tokens / target forwards with the prefill counted (now tokens_per_forward), "
                "0.3-1.3% below the reference tau (accepted + 1 per verify step, prefill "
                "excluded: EAGLE, Spec-Bench) the other runs report. Re-evaluate it with "
                "python -m specbench.evaluate RUN to compare tau across runs.")


LOADED_MARK = " (loaded)"


def loaded(r: Run) -> list[str]:
    """Why the run's decoding timings came from a loaded machine (eval.json's machine_load),
    or [] (also for an eval.json recorded before it was measured)."""
    load = dig(r.eval or {}, "machine_load") or {}
    return list(load.get("reasons") or []) if load.get("loaded") else []


def loaded_notes(runs) -> list[str]:
    return [f"{LOADED_MARK.strip()}: {r.name}'s speedups were measured on a loaded machine ("
            + "; ".join(loaded(r)) + "), so its wall-time figures are not comparable; tau is "
            "unaffected. Re-evaluate it on an idle machine: python -m specbench.evaluate "
            f"{r.name}" for r in runs if loaded(r)]


def fmt_nodes(r: Run, m: str) -> str:
    """Draft nodes verified per step, mean/max (a tree's node budget); n/a for a file recorded
    before issue 11."""
    mean, top = dig(r.methods, f"{m}.draft_nodes_mean"), dig(r.methods, f"{m}.draft_nodes_max")
    return NA if mean is None or top is None else f"{fmt_num(mean, 1)}/{top}"


def table(title, headers, rows, note=None) -> tuple:
    return ("table", title, headers, rows, note)


def intro_blocks(runs, groups, tune) -> list[tuple]:
    blocks = [("h1", "specbench comparison"),
              ("p", f"{len(runs)} completed runs in {len(groups)} group(s) of comparable "
                    f"controlled settings (seed is the repeat key and is not part of the "
                    f"grouping). Ranked by decoding tau of each run's best draft method when "
                    f"every run of a group has an eval.json decoded with equal settings, else "
                    f"by held-out tau_sim.")]
    if tune:
        keys = ", ".join(tune)
        blocks.append(("p", f"--tune {','.join(tune)} (an equal tuning budget): {keys} "
                            f"{'is' if len(tune) == 1 else 'are'} left out of the grouping "
                            f"like the seed; each algorithm config is taken "
                            f"at its best {keys} (highest mean ranking metric over seeds) and "
                            f"the configs are ranked at their best."))
    return blocks


def tuning_tables(g: dict, tune) -> list[tuple]:
    """Each config at its best value, and every (config, value)."""
    t, metric, keys = g["tuning"], g["metric"], ", ".join(tune)
    rows = [[str(i), b["config"], b["tuned"], fmt_ms(b["mean"], b["std"], b["n"]),
             fmt_ms(*b["tau_sim"]), fmt_ms(*b["eval_loss"]),
             " ".join(map(str, b["seeds"])) or NA] for i, b in enumerate(t["best"], start=1)]
    best = table(f"Each algorithm config at its best {keys} (equal tuning budget), ranked by "
                 f"{metric}", ["rank", "config", "tuned", f"{metric} (mean ± std)", "tau_sim",
                               "eval loss", "seeds"], rows,
                 t["verdict"] and f"top two: {t['verdict']}")
    rows = [[c["config"], fmt_value(c["value"]), str(len(c["runs"])),
             " ".join(map(str, c["seeds"])), fmt_ms(c["mean"], c["std"], c["n"]),
             fmt_ms(*c["tau_sim"]), fmt_ms(*c["eval_loss"]), "best" if c["best"] else ""]
            for c in t["cells"]]
    every = table(f"Every (config, {keys}) (mean ± sample std over seeds)",
                  ["config", keys, "runs", "seeds", metric, "tau_sim", "eval loss", "selected"],
                  rows)
    return [best, every]


def group_blocks(g: dict, drafts, shared, one_table: bool, tune) -> list[tuple]:
    """A group's heading and tables (``one_table``: its runs are ranked in the common table)."""
    rs = g["runs"]
    blocks = [("h2", f"Group {g['id']}: fingerprint {', '.join(g['fingerprints'])}")]
    blocks += tuning_tables(g, tune) if tune else []
    if not one_table:
        rows = [run_row(r, i, drafts, tune=tune) for i, r in enumerate(rs, start=1)]
        blocks.append(table(f"Ranked by {g['metric']}" + (" (every run)" if tune else ""),
                            run_columns(drafts, False, tune), rows, shared))
    configs, verdict = g["configs"], g["verdict"]
    if not tune and any(c["n"] > 1 for c in configs):
        rows = [[c["config"], str(len(c["runs"])), " ".join(map(str, c["seeds"])),
                 fmt_ms(c["mean"], c["std"], c["n"]), fmt_ms(*c["tau_sim"]),
                 fmt_ms(*c["eval_loss"])] for c in configs]
        blocks.append(table("Seed repeats (mean ± sample std)",
                            ["config", "runs", "seeds", f"{g['metric']}", "tau_sim",
                             "eval loss"], rows, verdict and f"top two: {verdict}"))
    blocks += acceptance_blocks(rs, drafts)
    cats = sorted({c for r in rs for c in r.categories})
    if cats:
        rows = [[str(i), r.name, r.best_method or NA] +
                [fmt_num(category_tau(r, c), 3) for c in cats]
                for i, r in enumerate(rs, start=1)]
        blocks.append(table("Decoding tau per prompt category (best draft method)",
                            ["rank", "run", "method"] + cats, rows))
    return blocks


ACCEPTANCE_POSITIONS = 16  # the report's columns; eval.json keeps every position


def acceptance_blocks(rs, drafts) -> list[tuple]:
    """Per run and draft method: the conditional acceptance rate at each draft position (a
    tree's: at each depth; eval.json ``acceptance_by_position``), so the decay along a chain,
    a block or a tree's depth is visible beside the ranking; nothing for files recorded before
    the decoder counted it."""
    rows = []
    for r in rs:
        for m in drafts:
            rates = dig(r.methods, f"{m}.acceptance_by_position")
            if rates:
                rows.append([r.name, m, *(fmt_num(a, 2) for a in rates[:ACCEPTANCE_POSITIONS])])
    if not rows:
        return []
    width = max(len(row) for row in rows) - 2
    rows = [row + [""] * (width + 2 - len(row)) for row in rows]
    return [table("Acceptance by draft position (accepted / reached, over verify steps)",
                  ["run", "method", *(str(k) for k in range(width))], rows,
                  "position k is reached when the k tokens before it were accepted")]


def failed_blocks(failed) -> list[tuple]:
    if not failed:
        return []
    own = ("unreadable", "invalid")  # compare's own one-paragraph reasons: not cut
    rows = [[f.name, str(f.status), short_error(f.error, 1000 if f.status in own else 200),
             short(f.overrides) if f.overrides else NA] for f in failed]
    return [("h2", "Failed or unfinished runs (not ranked)"),
            table("", ["run", "status", "error", "overrides"], rows)]


def build_blocks(runs, groups, notes, failed, allow_mismatch, tune=()) -> list[tuple]:
    """The report (the plots are appended by the caller): intro, notices, the tables of each
    group (or one table of all runs with --allow-mismatch), then the runs left out."""
    drafts = [m for m in method_order(runs) if m not in BASELINES]
    compact = lambda d: " ".join(f"{k}={short(v)}" for k, v in d.items()) or NA
    shared = "; ".join(f"{alg} (all runs): {compact(fixed)}"
                       for alg, (_, fixed) in describe_settings(runs).items())
    one_table = allow_mismatch and len(groups) > 1
    old = [r.name for r in runs if r.old_tau]
    notes = notes + ([f"{OLD_TAU_NOTE} Runs: {', '.join(old)}."] if old else []) + \
        loaded_notes(runs)
    intro = intro_blocks(runs, groups, tune)  # the title, the headline, then how it ranks
    blocks = intro[:1] + headline_blocks(groups, notes) + intro[1:] + \
        [("notice", n) for n in notes]
    if one_table:
        metric = rank_metric(runs)
        rows = [run_row(r, i, drafts, r.warning or "", tune) for i, r in
                enumerate(ranked(runs, metric), start=1)]
        blocks.append(("h2", f"All runs (--allow-mismatch), ranked by {metric}"))
        blocks.append(table("", run_columns(drafts, True, tune), rows, shared))
    for g in groups:
        blocks += group_blocks(g, drafts, shared, one_table, tune)
    return blocks + failed_blocks(failed)


# ---------------------------------------------------------------------------------- CSV

CSV_METHOD_KEYS = ("tau", "tokens_per_forward", "draft_nodes_mean", "draft_nodes_max", "speedup",
                   "tau_ci95_lo", "tau_ci95_hi", "speedup_ci95_lo", "speedup_ci95_hi")


def method_value(r: Run, m: str, key: str):
    """A CSV cell of method ``m``: eval.json's figure, or one end of its interval."""
    if key.endswith(("_ci95_lo", "_ci95_hi")):
        ci = dig(r.methods, f"{m}.{key[:-3]}")
        return ci[0 if key.endswith("_lo") else 1] if isinstance(ci, list) and ci else None
    return dig(r.methods, f"{m}.{key}")


def tau_definition(r: Run) -> str:
    """What the run's tau column holds: the reference tau, or (a file recorded before issue
    11) new tokens / target forwards."""
    return "tokens_per_forward (eval.json before issue 11)" if r.old_tau else \
        str(dig(r.eval, "settings.tau_definition"))


def csv_columns(methods, cats, algkeys, allow_mismatch, tune) -> list[str]:
    cols = ["group", "rank", "run", "status", "algorithm", "settings", "fingerprint", "seed"]
    cols += [*tune, "tuned_best"] if tune else []
    cols += ["trainable_params", "horizon", "target_features", "train_flops", "draft_flops",
             "train_time_s", "train_tokens_per_s",
             "final_train_loss", "eval_loss", "tau_sim", "rank_metric", "score", "best_method"]
    cols += ["tau_definition"] + [f"{m}_{x}" for m in methods for x in CSV_METHOD_KEYS]
    cols += ["exact"] + [f"tau_{c}" for c in cats] + algkeys
    return cols + (["warning"] if allow_mismatch else [])


def csv_rows(runs, groups, allow_mismatch, tune=()) -> tuple[list[str], list[list]]:
    """The CSV's columns and one row of raw (unrounded) values per run, ranked as in the
    tables; a missing value is '-'."""
    methods = method_order(runs)
    cats = sorted({c for r in runs for c in r.categories})
    algkeys = sorted({f"{r.algorithm}.{k}" for r in runs for k in r.settings})
    cols = csv_columns(methods, cats, algkeys, allow_mismatch, tune)
    if allow_mismatch and len(groups) > 1:  # ranked as in the one table
        metric = rank_metric(runs)
        groups = [{"id": "all", "runs": ranked(runs, metric), "metric": metric}]
    out = []
    for g in groups:
        for i, r in enumerate(g["runs"], start=1):
            s, t = r.summary, r.summary.get("train") or {}
            row = [r.group, i, r.name, r.status, r.algorithm, r.settings_str, r.fingerprint,
                   r.seed]
            row += [*r.tuned_value(tune), "yes" if r.tuned_best else "no"] if tune else []
            row += [t.get("trainable_params"), horizon(r), features(r), dig(t, "flops.total"),
                    dig(t, "flops.draft_forward_backward"), t.get("train_time_s"),
                    t.get("tokens_per_s"), t.get("final_loss"),
                    dig(s, "eval_split.loss"), r.tau_sim, g["metric"], score(r, g["metric"]),
                    r.best_method]
            row += [tau_definition(r) if r.eval else None]
            row += [method_value(r, m, x) for m in methods for x in CSV_METHOD_KEYS]
            row += [exactness(r)] + [category_tau(r, c) for c in cats]
            prefix = r.algorithm + "."
            row += [r.settings.get(k[len(prefix):]) if k.startswith(prefix) else None
                    for k in algkeys]
            row += [r.warning or ""] if allow_mismatch else []
            out.append([NA if v is None or v == "" else v for v in row])
    return cols, out
