"""Grouping runs by their controlled settings, ranking within a group, and seed statistics."""

from __future__ import annotations

import json
import math
import statistics

from specbench.fairness import flatten

from .fmt import NA, REPEAT_KEY, fmt_num, is_number, short
from .runs import Run, dig


def group_key(r: Run, ignore=(REPEAT_KEY,)) -> str:
    return json.dumps({k: v for k, v in r.controlled.items() if k not in ignore},
                      sort_keys=True, default=str)


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


def eval_settings(r: Run) -> dict:
    """eval.json's settings that can change tau (not the free-text description, not the device
    or the verify mode (they change timings only), not the per-method node budgets, which the tables show beside tau). ``tau_definition`` is
    among them (absent from a file recorded before issue 11): runs whose tau means different
    things are never ranked against each other by it."""
    return {k: v for k, v in (dig(r.eval, "settings") or {}).items()
            if k not in ("decoding", "device", "verify", "budget")}


def rank_metric(runs) -> str:
    """Decoding tau when every run has one, measured with the same decoding settings."""
    if any(r.decode_tau is None for r in runs):
        return "tau_sim"
    same = len({json.dumps(eval_settings(r), sort_keys=True, default=str) for r in runs}) == 1
    return "decoding tau" if same else "tau_sim"


def score(r: Run, metric: str):
    return r.decode_tau if metric == "decoding tau" else r.tau_sim


def ranked(runs, metric) -> list[Run]:
    return sorted(runs, key=lambda r: (score(r, metric) is None, -(score(r, metric) or 0),
                                       r.name))


def config_key(r: Run) -> str:
    """An algorithm config: the algorithm and its settings."""
    return json.dumps([r.algorithm, r.settings], sort_keys=True, default=str)


def by_config(runs) -> list[list[Run]]:
    """Runs with identical algorithm settings together, in order of first appearance."""
    configs: dict[str, list] = {}
    for r in runs:
        configs.setdefault(config_key(r), []).append(r)
    return list(configs.values())


def aggregate(rs, metric, label) -> dict:
    """Runs of one config (and tuned value) over seeds: mean +- std of the metric and more."""
    values = [v for v in (score(r, metric) for r in rs) if is_number(v) and math.isfinite(v)]
    m, s, n = mean_std(values)
    return {"config": label(rs[0]), "runs": rs, "n": n, "mean": m, "std": s, "values": values,
            "seeds": sorted((r.seed for r in rs), key=str),
            "tau_sim": mean_std(r.tau_sim for r in rs),
            "eval_loss": mean_std(dig(r.summary, "eval_split.loss") for r in rs)}


def repeats(runs, metric, label) -> tuple[list[dict], str | None]:
    """Runs with identical algorithm settings aggregated over seeds, best mean first, and the
    verdict on the top two (see the package docstring for the rule)."""
    rows = [aggregate(rs, metric, label) for rs in by_config(runs)]
    rows.sort(key=lambda c: (c["mean"] is None, -(c["mean"] or 0)))
    return rows, top_two(rows, metric)


SEEDS_FOR_A_VERDICT = 3
ALPHA = 0.05


def seed_test(a: list[float], b: list[float]) -> tuple[str, float | None]:
    """(verdict, p-value) of Welch's t-test on two configs' per-seed values: 'significant' only
    when p < 0.05; no verdict under 3 seeds of either ('one seed: no verdict')."""
    n = min(len(a), len(b))
    if n < SEEDS_FOR_A_VERDICT:
        return ("one seed: no verdict" if n <= 1 else
                f"{n} seeds: no verdict (Welch's t-test needs {SEEDS_FOR_A_VERDICT} of each)"), None
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        p = 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0  # no spread: exact
    else:
        from scipy.stats import ttest_ind

        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    word = "significant" if p < ALPHA else "not significant"
    return f"{word} (Welch's t-test, p = {p:.3g}, {len(a)} vs {len(b)} seeds)", p


def top_two(rows, metric) -> str | None:
    """The verdict on the first two rows (best mean first): Welch's t-test over their seeds."""
    if len(rows) < 2 or rows[1]["mean"] is None:
        return None
    a, b = rows[0], rows[1]
    diff = a["mean"] - b["mean"]
    verdict, _ = seed_test(a.get("values", []), b.get("values", []))
    return (f"{a['config']} vs {b['config']}: {metric} difference {diff:.3f}, seed "
            f"spread {fmt_num(a['std'], 3)} + {fmt_num(b['std'], 3)}: {verdict}")


# ---------------------------------------------------------------------------------- labels

def describe_settings(runs) -> dict:
    """Per algorithm: the settings that vary between its runs (shown per run) and the rest."""
    out = {}
    for alg in sorted({r.algorithm for r in runs}):
        rs = [r for r in runs if r.algorithm == alg]
        keys = sorted({k for r in rs for k in r.settings})
        vary = [k for k in keys if len({json.dumps(r.settings.get(k), default=str)
                                        for r in rs}) > 1]
        fixed = {k: rs[0].settings.get(k) for k in keys if k not in vary}
        out[alg] = (vary, fixed)
    return out


def set_labels(runs) -> None:
    """``settings_str``: the algorithm settings that vary between runs of that algorithm."""
    settings = describe_settings(runs)
    for r in runs:
        vary = settings[r.algorithm][0]
        r.settings_str = " ".join(f"{k}={short(r.settings.get(k))}" for k in vary) or NA


def config_label(r: Run) -> str:
    return r.algorithm + ("" if r.settings_str == NA else " " + r.settings_str)


# ---------------------------------------------------------------------------------- groups

def make_groups(runs, ignore) -> list[dict]:
    """Runs with equal controlled settings (``ignore`` aside), each group ranked by its metric;
    every run's ``group`` is set."""
    by_key: dict[str, list] = {}
    for r in runs:
        by_key.setdefault(group_key(r, ignore), []).append(r)
    groups = []
    for i, rs in enumerate(by_key.values(), start=1):
        metric = rank_metric(rs)
        groups.append({"id": i, "runs": ranked(rs, metric), "metric": metric,
                       "fingerprints": sorted({r.fingerprint or NA for r in rs}),
                       "controlled": rs[0].controlled})
        for r in rs:
            r.group = i
    return groups


def decoding_note(g: dict, members) -> str | None:
    """Why a group whose runs all have a decoding tau is ranked by tau_sim, if it is
    (``members``: the group's runs in the order they were found; the first is the reference)."""
    if g["metric"] != "tau_sim" or any(r.decode_tau is None for r in members):
        return None
    ref = flatten(eval_settings(members[0]), "decode.")
    diff = {d for r in members for d in differences(ref, flatten(eval_settings(r), "decode."))}
    return (f"group {g['id']}: the runs' eval.json were decoded with different settings "
            f"({'; '.join(sorted(diff))}): ranked by held-out tau_sim instead of decoding tau. "
            "Re-run python -m specbench.evaluate with equal settings.")


def comparability_notes(groups, ignore, tune=()) -> tuple[list[str], set[str]]:
    """'not comparable' for each pair of groups, a note for a group whose equal settings have
    several fingerprints; and every controlled key that differs between groups."""
    notes, differing = [], set()
    for a in groups:
        for b in groups[a["id"]:]:
            diff = differences(a["controlled"], b["controlled"], ignore)
            differing |= set(diff_keys(a["controlled"], b["controlled"], ignore))
            notes.append(f"not comparable: group {a['id']} vs group {b['id']}: " + "; ".join(diff))
        seeds: dict = {}
        for r in a["runs"]:  # one fingerprint per (seed, tuned value) expected
            seeds.setdefault(json.dumps([r.seed, *r.tuned_value(tune)], default=str),
                             set()).add(r.fingerprint)
        if any(len(f) > 1 for f in seeds.values()):
            notes.append(f"note: group {a['id']} has equal controlled settings but different "
                         f"fingerprints {', '.join(a['fingerprints'])} (recorded by different "
                         "specbench versions?)")
    return notes, differing


def mismatch_warning(groups, ignore) -> str:
    """--allow-mismatch: each run's ``warning`` against the largest group, and the notice."""
    ref = max(groups, key=lambda g: len(g["runs"]))
    for g in groups:
        for r in g["runs"]:
            r.warning = "reference group" if g is ref else \
                "differs: " + "; ".join(differences(g["controlled"], ref["controlled"], ignore))
    return (f"WARNING: --allow-mismatch: runs with different controlled settings are ranked "
            f"together; the warning column names what differs from group {ref['id']} (the "
            f"largest).")


def tune_hint(runs, differing: set, swept: set) -> str | None:
    """When the groups differ only in trainer keys the sweep varied: suggest --tune."""
    configs = {config_key(r) for r in runs}
    if not differing or len(configs) < 2 or not all(
            k.startswith("trainer.") and k in swept for k in differing):
        return None
    keys = ",".join(sorted(differing))
    return (f"hint: the groups differ only in {keys}, which the sweep varied (a hyperparameter "
            f"grid?). To rank each algorithm config at its best value over the same grid (an "
            f"equal tuning budget), add --tune {keys}.")
