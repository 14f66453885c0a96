"""The PNG plots: loss curves (one panel per algorithm), per-position acceptance (the held-out
top-1 of training, and the rate measured while decoding, apart), the accepted-length histogram,
tau against the tuned key and against each swept algorithm setting, the scaling curve (tau vs
training tokens and FLOPs), decoding speedup, and speedup against tau. Intervals are drawn where
eval.json has them (95% bootstrap over prompts). A plot without data is skipped with a line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .fmt import NA, fmt_value, is_number
from .report import method_order
from .runs import dig
from .stats import describe_settings, mean_std


@dataclass
class Canvas:
    """Where the plots go, and what was written (title, path) or skipped (why)."""
    plt: object
    out: Path
    multi: bool  # several groups: run labels carry their group
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def tag(self, r) -> str:
        return f"{r.name} (g{r.group})" if self.multi else r.name

    def save(self, fig, name, title) -> None:
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=90)
        self.plt.close(fig)
        self.written.append((title, self.out / name))


def make_plots(runs, groups, out: Path, tune=()) -> tuple[list[tuple[str, Path]], list[str]]:
    """PNG plots in ``out``; returns (title, path) for each written and a note for each skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install matplotlib)"]
    c = Canvas(plt, out, len(groups) > 1)
    with matplotlib.rc_context({"text.parse_math": False}):  # a '$' in a run name is text
        loss_curves(c, runs)
        acceptance(c, runs)
        if tune:
            tau_vs_tuned(c, groups, tune)
        tau_vs_param(c, [r for r in runs if r.tuned_best] if tune else runs, tune)
        tau_vs_budget(c, [r for r in runs if r.tuned_best] if tune else runs)
        speedup(c, runs)
        decode_acceptance(c, runs)
        accepted_lengths(c, runs)
        speedup_vs_tau(c, runs)
    return c.written, c.skipped


LOSS_NOTE = ("one panel per algorithm: each algorithm's train/loss is its own objective (a sum "
             "over its heads or TTT steps, with its own weights), so losses are comparable only "
             "between runs of the same algorithm")


def loss_curves(c: Canvas, runs) -> None:
    """Training loss, one panel per algorithm (LOSS_NOTE says why)."""
    curves = [(r, [(m["step"], m["train/loss"]) for m in r.metrics
                   if is_number(m.get("step")) and is_number(m.get("train/loss"))])
              for r in runs]
    algs = sorted({r.algorithm for r, pts in curves if pts})
    if not algs:
        c.skipped.append("loss curves skipped: no train/loss rows in any metrics.jsonl")
        return
    fig, axes = c.plt.subplots(len(algs), 1, figsize=(8, 3.6 * len(algs)), squeeze=False)
    for ax, alg in zip(axes[:, 0], algs):
        for r, pts in curves:
            if pts and r.algorithm == alg:
                ax.plot(*zip(*pts), label=c.tag(r))
        ax.set(xlabel="optimizer step", ylabel=f"train loss ({alg})",
               title=f"Training loss: {alg} (comparable within this panel only)")
        ax.legend(fontsize=7)
    c.save(fig, "loss_curves.png", f"Training loss curves ({LOSS_NOTE})")


def acceptance(c: Canvas, runs) -> None:
    acc = [(r, dig(r.summary, "eval_split.top1") or []) for r in runs]
    if not any(a for _, a in acc):
        c.skipped.append("acceptance plot skipped: no eval_split.top1 in any summary.json")
        return
    fig, ax = c.plt.subplots(figsize=(8, 4.5))
    for r, a in acc:
        if a:
            ax.plot(range(1, len(a) + 1), a, marker="o", label=f"{c.tag(r)} [{r.algorithm}]")
    ax.set(xlabel="draft position k (Medusa: head k, EAGLE-3: TTT step k)",
           ylabel="held-out top-1 accuracy (training metric)",
           title="Per-position top-1 on the held-out split (training, not decoding)")
    ax.legend(fontsize=7)
    c.save(fig, "acceptance.png", "Per-position acceptance")


def tau_vs_tuned(c: Canvas, groups, tune) -> None:
    """The tuning curves of each group: one line per config, its selected value starred."""
    fig, axes = c.plt.subplots(len(groups), 1, figsize=(8, 4.5 * len(groups)), squeeze=False)
    for ax, g in zip(axes[:, 0], groups):
        t = g["tuning"]
        numeric = len(tune) == 1 and all(is_number(v[0]) for v in t["grid"])
        pos = {v: (v[0] if numeric else i) for i, v in enumerate(t["grid"])}
        for b in t["best"]:
            pts = [(pos[x["value"]], x["mean"], x["std"] or 0) for x in b["cells"]
                   if x["mean"] is not None]
            if pts:
                line = ax.errorbar(*zip(*pts), marker="o", capsize=3, label=b["config"])
                if b["value"] is not None:
                    ax.plot([pos[b["value"]]], [b["mean"]], marker="*", markersize=14,
                            color=line[0].get_color())
        xs = list(pos.values())
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        ax.set_xticks(xs, [fmt_value(v) for v in t["grid"]])
        ax.minorticks_off()
        ax.set(xlabel=", ".join(tune), ylabel=g["metric"],
               title=f"{g['metric']} vs {', '.join(tune)}"
               + (f" (group {g['id']})" if c.multi else "")
               + "; mean ± std over seeds, * = selected")
        ax.legend(fontsize=7)
    c.save(fig, "tau_vs_tuned.png", "tau vs the tuned key (equal tuning budget)")


def setting_axis(rs, key) -> tuple[list[str], list, dict]:
    """The values of one algorithm setting (as JSON, as values), sorted, and their x positions."""
    xs = sorted({json.dumps(r.settings.get(key), default=str) for r in rs})
    values = [json.loads(x) for x in xs]
    numeric = all(is_number(v) for v in values)
    if numeric:
        xs = sorted(xs, key=json.loads)
        values = sorted(values)
    return xs, values, {x: (json.loads(x) if numeric else i) for i, x in enumerate(xs)}


SERIES = (("tau_sim", "o", None), ("decode_tau", "s", False), ("decode_tau", "x", True))


def tau_vs_param(c: Canvas, runs, tune) -> None:
    """tau_sim and decoding tau against each algorithm setting that varies (mean ± std)."""
    swept = [(alg, k) for alg, (vary, _) in describe_settings(runs).items() for k in vary]
    if not swept:
        c.skipped.append("tau-vs-parameter plot skipped: no algorithm setting varies between runs")
        return
    fig, axes = c.plt.subplots(len(swept), 1, figsize=(8, 4 * len(swept)), squeeze=False)
    for ax, (alg, key) in zip(axes[:, 0], swept):
        rs = [r for r in runs if r.algorithm == alg]
        xs, values, pos = setting_axis(rs, key)
        for g in sorted({r.group for r in rs}):
            # an eval.json recorded before issue 11 holds tokens / forwards as its tau: its
            # own series, never averaged with the reference tau
            for attr, marker, old in SERIES:
                pts = []
                for x in xs:
                    m, s, n = mean_std(getattr(r, attr) for r in rs if r.group == g and
                                       (old is None or r.old_tau == old) and
                                       json.dumps(r.settings.get(key), default=str) == x)
                    if n:
                        pts.append((pos[x], m, s or 0))
                if pts:
                    name = "tau_sim (held-out)" if attr == "tau_sim" else \
                        "decoding tau (best draft)" if not old else \
                        "old eval.json: tokens / forwards (best draft)"
                    ax.errorbar(*zip(*pts), marker=marker, capsize=3,
                                label=name + (f", group {g}" if c.multi else ""))
        ax.set_xticks(list(pos.values()), [str(v) for v in values])
        ax.set(xlabel=f"algorithm.{key} ({alg})", ylabel="tau",
               title=f"tau vs {key} ({alg}; mean ± std over seeds"
               + (f"; each at its best {', '.join(tune)})" if tune else ")"))
        ax.legend(fontsize=7)
    c.save(fig, "tau_vs_param.png", "tau vs the swept parameter")


def budget_metric(runs) -> tuple[str, str]:
    """The tau every run has: decoding tau (best draft method) if all were decoded, else the
    held-out tau_sim (one metric on one axis, never a mix)."""
    if all(is_number(r.decode_tau) for r in runs):
        return "decode_tau", "decoding tau (best draft method)"
    return "tau_sim", "held-out tau_sim"


def tau_vs_budget(c: Canvas, runs) -> None:
    """The scaling curve: tau against training tokens and against training FLOPs, one line per
    algorithm config, mean ± std over the seeds at each budget."""
    from matplotlib import ticker

    budget = {r.name: (dig(r.summary, "checklist.tokens_trained"),
                       dig(r.summary, "train.flops.total")) for r in runs}
    rs = [r for r in runs if all(is_number(x) for x in budget[r.name])]
    if len({budget[r.name][0] for r in rs}) < 2:
        c.skipped.append("tau-vs-budget plot skipped: the runs share one training budget "
                         "(train at several data.max_rows or trainer.max_steps to draw it)")
        return
    attr, label = budget_metric(rs)
    configs = sorted({(r.algorithm, r.settings_str) for r in rs})
    fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    for ax, j, xlabel in ((axes[0, 0], 0, "training tokens"),
                          (axes[0, 1], 1, "training FLOPs (target forward + draft)")):
        for alg, setting in configs:
            mine = [r for r in rs if (r.algorithm, r.settings_str) == (alg, setting)]
            pts = []
            for tokens in sorted({budget[r.name][0] for r in mine}):
                at = [r for r in mine if budget[r.name][0] == tokens]
                m, sd, n = mean_std(getattr(r, attr) for r in at)
                x, _, _ = mean_std(budget[r.name][j] for r in at)
                if n:
                    pts.append((x, m, sd or 0))
            if pts:
                name = alg if setting in ("", NA) else f"{alg} {setting}"
                ax.errorbar(*zip(*pts), marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        # plain "1e+05" labels (math text is off, so the default 10^5 labels would print raw)
        ax.xaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=True))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set(xlabel=xlabel, ylabel=label, title=f"{label} vs {xlabel}")
        ax.legend(fontsize=7)
    fig.suptitle("Scaling: mean ± std over seeds at each budget")
    c.save(fig, "tau_vs_budget.png", "tau vs training tokens and FLOPs (scaling curve)")


def speedup(c: Canvas, runs) -> None:
    ev = [r for r in runs if r.methods]
    if not ev:
        c.skipped.append("speedup plot skipped: no run has an eval.json")
        return
    methods = method_order(ev)
    fig, ax = c.plt.subplots(figsize=(max(6, 1.2 * len(ev) * len(methods) / 3), 4.5))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        pts = [(i + j * width, dig(r.methods, f"{m}.speedup"), _err(r, m, "speedup"))
               for i, r in enumerate(ev)]
        pts = [(x, y, e) for x, y, e in pts if y is not None]
        if pts:
            xs, ys, errs = zip(*pts)
            ax.bar(xs, ys, width=width, label=m, yerr=_errbars(ys, errs), capsize=2)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(ev))],
                  [c.tag(r) for r in ev], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="speedup over greedy (its own eval)",
           title="Decoding speedup: baselines and draft methods")
    ax.legend(fontsize=7)
    c.save(fig, "speedup.png", "Decoding speedup")



def _err(r, m: str, key: str):
    """eval.json's 95% interval of ``key`` for method ``m`` of run ``r`` (None if absent)."""
    ci = dig(r.methods, f"{m}.{key}_ci95")
    return ci if isinstance(ci, list) and len(ci) == 2 else None


def _errbars(values, intervals):
    """matplotlib's asymmetric error bars [[below...], [above...]] (0 where unknown)."""
    if not any(intervals):
        return None
    return [[max(0.0, v - ci[0]) if ci else 0.0 for v, ci in zip(values, intervals)],
            [max(0.0, ci[1] - v) if ci else 0.0 for v, ci in zip(values, intervals)]]


def decode_acceptance(c: Canvas, runs) -> None:
    """The acceptance rate at each draft position measured during decoding (of the steps that
    reached position k, the share that accepted it), for each run's best draft method."""
    rates = [(r, dig(r.methods, f"{r.best_method}.acceptance_by_position") or [])
             for r in runs if r.best_method]
    if not any(a for _, a in rates):
        c.skipped.append("decoding acceptance plot skipped: no eval.json records "
                         "acceptance_by_position")
        return
    fig, ax = c.plt.subplots(figsize=(8, 4.5))
    for r, a in rates:
        if a:
            ax.plot(range(1, len(a) + 1), a, marker="o",
                    label=f"{c.tag(r)} [{r.algorithm} {r.best_method}]")
    ax.set(xlabel="draft position k (1: the first drafted token)",
           ylabel="accepted / reached, while decoding",
           title="Per-position acceptance measured during decoding")
    ax.legend(fontsize=7)
    c.save(fig, "decode_acceptance.png", "Per-position acceptance (decoding)")


def accepted_lengths(c: Canvas, runs) -> None:
    """How many tokens each verify step committed (accepted + 1), over all prompts, for each
    run's best draft method: the distribution behind tau."""
    data = []
    for r in runs:
        if not r.best_method:
            continue
        name = f"{r.algorithm}_{r.best_method}"
        lengths = [n for p in dig(r.eval, "per_prompt") or []
                   for n in (p.get(name) or p.get(r.best_method) or {}).get("accepted_lengths",
                                                                            [])]
        if lengths:
            data.append((r, lengths))
    if not data:
        c.skipped.append("accepted-length histogram skipped: no eval.json records "
                         "accepted_lengths")
        return
    top = max(max(v) for _, v in data)
    bins = [b - 0.5 for b in range(1, top + 2)]
    fig, ax = c.plt.subplots(figsize=(8, 4.5))
    for r, v in data:
        ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5,
                label=f"{c.tag(r)} [{r.best_method}] tau {sum(v) / len(v):.2f}")
    ax.set(xlabel="tokens committed per verify step (accepted + 1)", ylabel="share of steps",
           title="Accepted length per verify step")
    ax.legend(fontsize=7)
    c.save(fig, "accepted_lengths.png", "Accepted-length histogram")


def speedup_vs_tau(c: Canvas, runs) -> None:
    """Each run's best draft method: wall-time speedup against tau, with their intervals."""
    pts = [(r, dig(r.methods, f"{r.best_method}.tau"),
            dig(r.methods, f"{r.best_method}.speedup")) for r in runs if r.best_method]
    pts = [(r, t, s) for r, t, s in pts if is_number(t) and is_number(s)]
    if not pts:
        c.skipped.append("speedup-vs-tau plot skipped: no run has an eval.json")
        return
    fig, ax = c.plt.subplots(figsize=(6.5, 4.5))
    for r, t, s in pts:
        ax.errorbar([t], [s], xerr=_errbars([t], [_err(r, r.best_method, "tau")]),
                    yerr=_errbars([s], [_err(r, r.best_method, "speedup")]), fmt="o",
                    capsize=3, label=f"{c.tag(r)} [{r.best_method}]")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set(xlabel="tau (tokens per verify step)", ylabel="speedup over greedy",
           title="Speedup against tau (95% bootstrap intervals where recorded)")
    ax.legend(fontsize=7)
    c.save(fig, "speedup_vs_tau.png", "Speedup against tau")
