"""Issue 11: compare reads old eval.json files (tau = new tokens / target forwards, no
settings.tau_definition) beside new ones (the reference tau), marks the old figures, never ranks
one against the other by decoding tau, and shows the draft nodes per step beside tau."""

from __future__ import annotations

import json

from specbench import compare as cmp
from specbench.evaluate import TAU_DEFINITION

from .test_compare import make_run, read_csv


def as_new(d, nodes=(24.5, 32)):
    """The run's eval.json as one written after issue 11."""
    ev = json.loads((d / "eval.json").read_text())
    ev["settings"]["tau_definition"] = TAU_DEFINITION
    for m in ev["overall"].values():
        m["tokens_per_forward"] = m["tau"] - 0.01
        m["draft_nodes_mean"], m["draft_nodes_max"] = nodes
    (d / "eval.json").write_text(json.dumps(ev))


def test_old_and_new_tau_are_marked_and_not_ranked_together(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "0-old", tree_tau=1.9)
    as_new(make_run(runs, "1-new", settings={"num_heads": 3}, tree_tau=1.5))
    res = cmp.compare([runs], out=tmp_path / "o", plots=False)
    [g] = res["groups"]
    assert g["metric"] == "tau_sim"  # the tau definitions differ: decoding tau is not ranked
    assert any("decode.tau_definition" in n for n in res["notes"])
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert "1.900 (old tau)" in md and "1.500 (old tau)" not in md
    assert "recorded before issue 11" in md and "0-old" in md
    assert "tree nodes" in md and "24.5/32" in md
    rows = {r["run"]: r for r in read_csv(tmp_path / "o")}
    assert rows["0-old"]["tau_definition"].startswith("tokens_per_forward")
    assert rows["1-new"]["tau_definition"] == TAU_DEFINITION
    assert rows["1-new"]["tree_draft_nodes_max"] == "32" and rows["0-old"]["tree_draft_nodes_max"] == "-"


def test_new_files_alone_rank_by_decoding_tau_unmarked(tmp_path):
    runs = tmp_path / "runs"
    as_new(make_run(runs, "0-a", tree_tau=1.9))
    as_new(make_run(runs, "1-b", settings={"num_heads": 3}, tree_tau=1.5), nodes=(20.0, 20))
    res = cmp.compare([runs], out=tmp_path / "o", plots=False)
    assert res["groups"][0]["metric"] == "decoding tau"  # the budgets differ: shown, not a split
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert "(old tau)" not in md and "recorded before issue 11" not in md
