"""The report's scaling curve (tau vs training tokens and FLOPs), the loss curves kept apart per
algorithm, and speedups measured on a loaded machine flagged."""

from __future__ import annotations

import json

from specbench import compare as cmp
from specbench.compare.plots import LOSS_NOTE
from specbench.evaluate import machine_load

from .test_compare import PNG, make_run


def set_budget(d, tokens: int, flops: float, tau: float, alg: str) -> None:
    s = json.loads((d / "summary.json").read_text())
    s["checklist"]["tokens_trained"] = tokens
    s["train"]["flops"] = {"total": flops}
    s["fingerprint"] = f"fp{tokens}"
    (d / "summary.json").write_text(json.dumps(s))
    ev = json.loads((d / "eval.json").read_text())
    ev["overall"][f"{alg}_tree"]["tau"] = tau
    (d / "eval.json").write_text(json.dumps(ev))


def test_scaling_curve_over_budgets_and_seeds(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    for tokens in (1000, 4000, 16000, 64000):
        for alg in ("medusa", "eagle3"):
            for seed in (0, 1):
                d = make_run(sweep, f"{alg}-{tokens}-s{seed}", alg=alg, seed=seed)
                set_budget(d, tokens, tokens * 3e9, 1.2 + tokens / 64000 + seed / 10, alg)
    drawn = {}
    real = cmp.plots.Canvas.save

    def keep(self, fig, name, title):
        if name == "tau_vs_budget.png":
            drawn.update({ax.get_xlabel(): {line.get_label(): list(line.get_xydata()[:, 0])
                                            for line in ax.get_lines() if line.get_label()[0]
                                            != "_"} for ax in fig.axes})
            drawn["y"] = {c.get_label(): list(c.lines[0].get_ydata())
                          for c in fig.axes[0].containers}
            fig.canvas.draw()  # tick labels exist once drawn
            drawn["ticks"] = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
        real(self, fig, name, title)

    monkeypatch.setattr(cmp.plots.Canvas, "save", keep)
    res = cmp.compare([sweep], allow_mismatch=True)
    assert (res["out"] / "tau_vs_budget.png").read_bytes().startswith(PNG)
    assert drawn["y"]["medusa"] == [1.2 + t / 64000 + 0.05 for t in (1000, 4000, 16000, 64000)]
    assert set(drawn["y"]) == {"medusa", "eagle3"}
    # math text is off in the plots, so log-axis labels must be plain text, not raw "$10^{4}$"
    assert "1e+04" in drawn["ticks"] or "10000" in drawn["ticks"]
    assert not any("$" in t or "mathdefault" in t for t in drawn["ticks"])
    md = (res["out"] / "comparison.md").read_text()
    assert "tau vs training tokens and FLOPs (scaling curve)" in md


def test_one_budget_skips_the_scaling_curve_and_losses_stay_per_algorithm(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep, "0-medusa")
    make_run(sweep, "1-eagle3", alg="eagle3")
    res = cmp.compare([sweep])
    md = (res["out"] / "comparison.md").read_text()
    assert "tau-vs-budget plot skipped: the runs share one training budget" in md
    assert LOSS_NOTE.split(",")[0] in md and "comparable only between runs of the same" in md


def test_loaded_machine_is_measured_and_flagged(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    turns = [{"load_1m": 1.9, "autoregressive": {"tokens": 64, "time_s": 4.0}}] * 9
    quiet = machine_load(turns)
    assert quiet["loaded"] is False and quiet["greedy_tokens_per_s_median"] == 16.0
    slow = turns + [{"load_1m": 3.1, "autoregressive": {"tokens": 64, "time_s": 9.0}}]
    load = machine_load(slow)
    assert load["loaded"] and load["load_1m_max"] == 3.1 and load["slow_greedy_turns"] == 1
    assert load["reasons"] == ["1-minute load average up to 3.1 on 2 cores",
                               "1 of 10 turns decoded greedily below half the run's median "
                               "16.0 tokens/s"]
    sweep = tmp_path / "sweep"
    make_run(sweep, "0-medusa")
    d = make_run(sweep, "1-eagle3", alg="eagle3")
    ev = json.loads((d / "eval.json").read_text())
    ev["machine_load"] = load
    (d / "eval.json").write_text(json.dumps(ev))
    res = cmp.compare([sweep], plots=False)
    md = (res["out"] / "comparison.md").read_text()
    assert "1-eagle3's speedups were measured on a loaded machine (1-minute load average up " \
           "to 3.1 on 2 cores" in md
    ranked = [b for b in res["blocks"] if b[0] == "table" and "rank" in b[2]]
    rows = {r[1]: dict(zip(ranked[0][2], r)) for r in ranked[0][3]}
    assert rows["1-eagle3"]["tree speedup"].endswith("(loaded)")
    assert not rows["0-medusa"]["tree speedup"].endswith("(loaded)")
