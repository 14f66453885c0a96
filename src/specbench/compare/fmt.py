"""Shared constants and how values are written in the tables ('-' for a missing one)."""

from __future__ import annotations

import json

BASELINES = ("autoregressive", "prompt_lookup", "lookahead")  # methods that are not drafts
REPEAT_KEY = "trainer.seed"
NA = "-"


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def short(v) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 24 else s[:12] + "…"


def short_error(e, limit=200) -> str:
    if not e:
        return NA
    e = " ".join(str(e).split())
    return e if len(e) <= limit else e[:limit] + "…"


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


def fmt_value(v: tuple) -> str:
    """A tuned value: '0.003', or '(0.003, 0.1)' for several tuned keys."""
    return short(v[0]) if len(v) == 1 else "(" + ", ".join(short(x) for x in v) + ")"


def fmt_tuned(tune, v: tuple) -> str:
    """'trainer.lr=0.003' (several keys: space-separated)."""
    return " ".join(f"{k}={short(x)}" for k, x in zip(tune, v))
