"""The report's first screen: who won, by how much (with an interval), on how much evidence,
under which controlled settings, and whether the comparison is fair.

- **The difference** between the top two configs of the group (best mean first). With two or
  more seeds of each: a Welch 95% interval of the difference of the means. Otherwise, ranked by
  decoding tau on the same prompts: a paired bootstrap over the prompts of the two best draft
  methods' tau (2,000 resamples, seed 0), on the seed the configs share (named when a config
  has more runs than that one, as while a sweep's later seeds are still running). Otherwise no
  interval, saying why.
- **The evidence**: prompts x new tokens x seeds.
- **The controlled settings** in one line: target, data rows and tokens, trainer, decoding.
- **Fairness**: one fingerprint (seeds aside), or the keys that differ between groups.
"""

from __future__ import annotations

import math
import statistics

from .fmt import REPEAT_KEY, fmt_num
from .runs import Run, dig
from .stats import seed_test

RESAMPLES = 2000


def _per_prompt_tau(r: Run, method: str) -> tuple[list, list] | None:
    """(tokens committed, verify steps) per prompt of the run's ``method`` (a bare name such as
    ``tree``), or None when eval.json has no such per-prompt counts."""
    rows = dig(r.eval, "per_prompt") or []
    name = next((k for k in (rows[0] if rows else {}) if k == method or
                 k == f"{r.algorithm}_{method}"), None)
    if name is None or any("verify_steps" not in p.get(name, {}) for p in rows):
        return None
    return [p[name]["step_tokens"] for p in rows], [p[name]["verify_steps"] for p in rows]


def paired_bootstrap(a: Run, b: Run, resamples: int = RESAMPLES, seed: int = 0):
    """95% interval of tau(a) - tau(b) (each run's best draft method), resampling the shared
    prompts in pairs; None when either eval.json lacks per-prompt counts or the prompts
    differ."""
    import numpy as np

    pa, pb = _per_prompt_tau(a, a.best_method), _per_prompt_tau(b, b.best_method)
    ids = lambda r: [(p.get("id"), p.get("turn")) for p in dig(r.eval, "per_prompt") or []]  # noqa: E731
    if pa is None or pb is None or ids(a) != ids(b) or not pa[0]:
        return None
    idx = np.random.default_rng(seed).integers(0, len(pa[0]), size=(resamples, len(pa[0])))

    def tau(counts):
        tokens, steps = (np.asarray(c, dtype=float)[idx].sum(1) for c in counts)
        return tokens / np.maximum(steps, 1)

    lo, hi = np.percentile(tau(pa) - tau(pb), [2.5, 97.5])
    return float(lo), float(hi)


def seed_matched(a: dict, b: dict) -> tuple[Run, Run, str | None] | None:
    """One run of each config for the paired bootstrap: of the first seed both ran (and that
    seed), else, with one run each, those two runs; None otherwise."""
    ra, rb = ({str(r.seed): r for r in c["runs"]} for c in (a, b))
    shared = sorted(set(ra) & set(rb), key=lambda s: (len(s), s))
    if shared:
        return ra[shared[0]], rb[shared[0]], shared[0]
    if len(a["runs"]) == len(b["runs"]) == 1:
        return a["runs"][0], b["runs"][0], None
    return None


def welch_interval(a: list[float], b: list[float]):
    """95% Welch interval of mean(a) - mean(b) (at least two values each), else None."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import t

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        d = statistics.fmean(a) - statistics.fmean(b)
        return d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    d, q = statistics.fmean(a) - statistics.fmean(b), float(t.ppf(0.975, df))
    return d - q * se, d + q * se


def difference_line(g: dict) -> str:
    configs, metric = g["configs"], g["metric"]
    if len(configs) < 2 or configs[1]["mean"] is None:
        return f"One config in this group ({configs[0]['config']}): nothing to rank it against."
    a, b = configs[0], configs[1]
    diff = a["mean"] - b["mean"]
    pair = seed_matched(a, b) if metric == "decoding tau" and min(a["n"], b["n"]) < 2 else None
    if pair:
        ci, how = paired_bootstrap(pair[0], pair[1]), "paired bootstrap over prompts"
        if max(a["n"], b["n"]) > 1:
            how += f", seed {pair[2]} of each"
    else:
        ci, how = welch_interval(a.get("values", []), b.get("values", [])), "Welch, over seeds"
    interval = (f"95% CI [{fmt_num(ci[0], 3)}, {fmt_num(ci[1], 3)}] ({how})" if ci else
                "no interval (needs per-prompt counts in eval.json on a seed both configs "
                "ran, or 2 seeds of each)")
    verdict, _ = seed_test(a.get("values", []), b.get("values", []))
    return (f"Winner: {a['config']}, {metric} {fmt_num(a['mean'], 3)} against "
            f"{b['config']}'s {fmt_num(b['mean'], 3)}: difference {diff:+.3f}, {interval}; "
            f"across seeds: {verdict}.")


def evidence_line(g: dict) -> str:
    r = g["runs"][0]
    s = dig(r.eval, "settings") or {}
    seeds = max((c["n"] for c in g["configs"]), default=1)
    if not s:
        return f"Evidence: held-out tau_sim only (no eval.json), {seeds} seed(s) per config."
    return (f"Evidence: {s.get('num_prompts', '?')} prompts ({s.get('samples', '?')} turns) x "
            f"{s.get('max_new_tokens', '?')} new tokens x {seeds} seed(s) per config, decoded "
            f"in {s.get('dtype', '?')}.")


def settings_line(r: Run) -> str:
    c, ck = r.controlled, r.summary.get("checklist") or {}
    target = c.get("model.hub_id") or c.get("model.path") or c.get("model.source") or "?"
    trainer = (f"lr {c.get('trainer.lr')}, {c.get('trainer.epochs')} epoch(s), global batch "
               f"{ck.get('global_batch', '?')}, {c.get('trainer.precision')}, max length "
               f"{c.get('trainer.max_length')}")
    decode = (f"{c.get('decode.num_prompts')} prompts x {c.get('decode.max_new_tokens')} tokens, "
              f"{c.get('decode.dtype')}")
    return (f"Controlled: target {target}; data {c.get('data.path') or c.get('data.hub_id')} "
            f"({ck.get('dataset_rows', '?')} rows, {ck.get('tokens_trained', '?')} tokens "
            f"trained); trainer {trainer}; decoding {decode}.")


def fairness_line(groups: list[dict], notes: list[str]) -> str:
    if len(groups) == 1:
        fps = groups[0]["fingerprints"]
        seeds = sorted({str(r.seed) for r in groups[0]["runs"]})
        if len(fps) == 1:
            return f"Fair: one fingerprint ({fps[0]}): every controlled setting is identical."
        return (f"Fair: the fingerprints ({', '.join(fps)}) differ only by {REPEAT_KEY} "
                f"({', '.join(seeds)}), the repeat key.")
    differ = [n.split(": ", 2)[-1] for n in notes if n.startswith("not comparable")]
    return (f"Not one comparison: {len(groups)} groups with different controlled settings "
            f"({'; '.join(differ) or 'see below'}); each group is ranked on its own.")


def headline_blocks(groups: list[dict], notes: list[str]) -> list[tuple]:
    """The paragraphs above the tables (the largest group's result)."""
    if not groups:
        return []
    g = max(groups, key=lambda x: len(x["runs"]))
    lines = [difference_line(g), evidence_line(g), settings_line(g["runs"][0]),
             fairness_line(groups, notes)]
    return [("p", line) for line in lines]
