"""python -m specbench.compare on failed, NaN, damaged and hostile runs (issue 10)."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from specbench import compare as cmp
from specbench.errors import UserError

from .test_compare import EXP, make_run, read_csv


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them


def left_out_lines(capsys) -> dict[str, str]:
    """The 'left out <run>: <why>' lines compare printed (stderr), by run."""
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("left out ")]
    return dict(x[len("left out "):].split(": ", 1) for x in lines)


# ---------------------------------------------------------------------------------- status

def test_runs_that_did_not_complete_are_left_out_with_a_line(tmp_path, capsys):
    make_run(tmp_path, "0-medusa")
    make_run(tmp_path, "1-medusa", status="failed")
    edit_json(make_run(tmp_path, "2-medusa") / "summary.json",
              lambda s: s.update(status="running", error=None))
    run = make_run(tmp_path, "3-eagle3", alg="eagle3")
    edit_json(run / "summary.json", lambda s: s.update(status="interrupted",
                                                       error="KeyboardInterrupt at step 40"))
    with open(run / "metrics.jsonl", "a") as f:  # interrupted mid-row: its status is the reason
        f.write('{"step": 45, "train/lo')
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    assert [r["name"] for r in res["runs"]] == ["0-medusa"]
    assert left_out_lines(capsys) == {
        "1-medusa": "status failed (RuntimeError: loss is NaN)",
        "2-medusa": "status running",
        "3-eagle3": "status interrupted (KeyboardInterrupt at step 40)"}
    md = (res["out"] / "comparison.md").read_text()
    assert "| 3-eagle3 | interrupted | KeyboardInterrupt at step 40 |" in md


# ---------------------------------------------------------------------------------- NaN / inf

NAN_TOP1 = [1.0, 1.0, 1.0, 1.0]  # NaN weights: argmax 0 everywhere, "perfect" accuracy


@pytest.mark.parametrize("where,damage", [
    ("summary.json train.final_loss = nan",
     lambda d: edit_json(d / "summary.json", lambda s: (
         s["train"].update(final_loss=math.nan),
         s["eval_split"].update(loss=math.nan, top1=NAN_TOP1, tau_sim=5.0)))),
    ("summary.json eval_split.loss = inf",
     lambda d: edit_json(d / "summary.json", lambda s: s["eval_split"].update(loss=math.inf))),
    ("summary.json eval_split.tau_sim = nan",
     lambda d: edit_json(d / "summary.json", lambda s: s["eval_split"].update(tau_sim=math.nan))),
    ("eval.json overall.medusa_tree.tau = inf",
     lambda d: edit_json(d / "eval.json", lambda e: e["overall"]["medusa_tree"].update(
         tau=math.inf))),
])
def test_non_finite_metrics_never_count_as_accuracy(tmp_path, capsys, where, damage):
    for seed in (0, 1):
        make_run(tmp_path, f"medusa-s{seed}", seed=seed, tree_tau=1.5 + seed / 10)
        make_run(tmp_path, f"eagle3-s{seed}", alg="eagle3", seed=seed, tree_tau=1.6)
    damage(tmp_path / "medusa-s1")  # "completed", with NaN loss: it would have ranked first
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)  # no crash in stdev
    assert "medusa-s1" not in [r["name"] for r in res["runs"]]
    assert left_out_lines(capsys)["medusa-s1"].startswith(f"non-finite metric {where}")
    [g] = res["groups"]
    assert {c["config"]: c["n"] for c in g["configs"]} == {"medusa": 1, "eagle3": 2}
    rows = read_csv(res["out"])
    assert all(math.isfinite(float(r["score"])) for r in rows)
    assert "medusa-s1" not in {r["run"] for r in rows}
    md = (res["out"] / "comparison.md").read_text()
    assert f"| medusa-s1 | invalid | non-finite metric {where}" in md


def test_mean_std_skips_non_finite_and_short_lists():
    assert cmp.mean_std([math.nan, 1.0, None]) == (1.0, None, 1)
    assert cmp.mean_std([math.inf, -math.inf]) == (None, None, 0)
    m, s, n = cmp.mean_std([1.0, 2.0, math.nan])
    assert (m, n) == (1.5, 2) and s == pytest.approx(0.5 ** 0.5)


# ---------------------------------------------------------------------------------- damaged files

def write(name, data):
    return lambda d: (d / name).write_text(data) if isinstance(data, str) else \
        (d / name).write_bytes(data)


def cut_last_row(d: Path):
    text = (d / "metrics.jsonl").read_text()
    (d / "metrics.jsonl").write_text(text[:-30])


DAMAGE = {
    "summary list": (write("summary.json", "[1, 2]"),
                     "summary.json holds a JSON list, not an object"),
    "summary truncated": (lambda d: (d / "summary.json").write_text(
        (d / "summary.json").read_text()[:300]), "summary.json could not be read as JSON"),
    "summary not utf-8": (lambda d: (d / "summary.json").write_bytes(
        b"\xff\xfe" + (d / "summary.json").read_bytes()), "summary.json is not UTF-8 text"),
    "summary train list": (lambda d: edit_json(d / "summary.json", lambda s: s.update(
        train=[1, 2])), "summary.json 'train' is a JSON list, not an object"),
    "summary tau_sim text": (lambda d: edit_json(d / "summary.json", lambda s: s[
        "eval_split"].update(tau_sim="high")), "eval_split.tau_sim is 'high', not a number"),
    "config list": (write("config.json", "[]"), "config.json holds a JSON list"),
    "eval list": (write("eval.json", '["medusa_tree"]'), "eval.json holds a JSON list"),
    "eval overall list": (lambda d: edit_json(d / "eval.json", lambda e: e.update(
        overall=[1.5])), "eval.json 'overall' is a JSON list, not an object"),
    "eval method number": (lambda d: edit_json(d / "eval.json", lambda e: e["overall"].update(
        medusa_tree=1.5)), "eval.json overall.medusa_tree is a JSON number, not an object"),
    "eval tau text": (lambda d: edit_json(d / "eval.json", lambda e: e["overall"][
        "medusa_tree"].update(tau="1.5")), "eval.json overall.medusa_tree.tau is '1.5'"),
    "eval per_category": (lambda d: edit_json(d / "eval.json", lambda e: e.update(
        per_category={"coding": [1]})), "eval.json per_category.coding is not an object"),
    "metrics not utf-8": (lambda d: (d / "metrics.jsonl").write_bytes(
        (d / "metrics.jsonl").read_bytes() + b'{"step": 99, "note": "\xe9t\xe9"}\n'),
        "metrics.jsonl line 21 is not UTF-8 text"),
    "metrics cut off": (cut_last_row, "metrics.jsonl line 20 is not a JSON row (cut off"),
    "metrics row number": (lambda d: (d / "metrics.jsonl").write_text(
        (d / "metrics.jsonl").read_text() + "12\n"), "metrics.jsonl line 21 is a JSON number"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_is_left_out_and_the_others_compared(tmp_path, capsys, case):
    damage, message = DAMAGE[case]
    assert len((EXP / "smollm2-medusa-default" / "metrics.jsonl").read_text().splitlines()) \
        == 20  # the line numbers above
    make_run(tmp_path, "a-medusa", tree_tau=1.5)
    make_run(tmp_path, "b-eagle3", alg="eagle3", tree_tau=1.6)
    bad = make_run(tmp_path, "c-medusa", tree_tau=1.9)
    damage(bad)
    out = tmp_path / "cmp"
    assert cmp.main([str(tmp_path), "--out", str(out), "--no-plots"]) == 0
    why = left_out_lines(capsys)["c-medusa"]
    assert why.startswith(str(bad)) and message in why, why
    assert "remove the run from the arguments, or re-run it" in why.lower()
    assert [r["run"] for r in read_csv(out)] == ["b-eagle3", "a-medusa"]
    md = (out / "comparison.md").read_text()
    assert "| c-medusa | unreadable |" in md and cmp.md_text(message) in md


def test_damaged_runs_with_plots(tmp_path, capsys):
    make_run(tmp_path, "a-medusa")
    make_run(tmp_path, "b-eagle3", alg="eagle3")
    DAMAGE["metrics row number"][0](make_run(tmp_path, "c-medusa"))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp")
    assert (res["out"] / "loss_curves.png").is_file() and len(res["runs"]) == 2


def test_no_usable_run_left(tmp_path, capsys):
    DAMAGE["summary list"][0](make_run(tmp_path, "a"))
    make_run(tmp_path, "b", status="failed")
    assert cmp.main([str(tmp_path), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "error: no usable run left" in err and "b: failed; a: unreadable" in err
    assert "Traceback" not in err
    with pytest.raises(UserError, match="none of the runs given completed"):
        cmp.compare([tmp_path / "a", tmp_path / "b"], plots=False)


def test_a_damaged_sweep_json_only_loses_its_job_list(tmp_path, capsys):
    make_run(tmp_path, "a-medusa")
    (tmp_path / "sweep.json").write_text('{"jobs": [')
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    assert [r["name"] for r in res["runs"]] == ["a-medusa"]
    assert "sweep.json could not be read as JSON" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- markup

HOSTILE = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
FORMULA = "=1+2|x"
ERROR = "boom\n| injected | row |\n<script>alert(1)</script> $\\frac$"


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))


def test_run_names_and_errors_cannot_inject_markup(tmp_path):
    make_run(tmp_path, HOSTILE, tree_tau=1.7)
    make_run(tmp_path, LINK, alg="eagle3", tree_tau=1.6)
    make_run(tmp_path, FORMULA, settings={"num_heads": 3}, tree_tau=1.5)
    make_run(tmp_path, "_em_ $\\frac$", settings={"num_heads": 2}, tree_tau=1.4)
    edit_json(make_run(tmp_path, "failed-run", status="failed") / "summary.json",
              lambda s: s.update(error=ERROR))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp")  # with plots: '$' is not mathtext
    out = res["out"]
    md = (out / "comparison.md").read_text()
    for raw in ("<img", "<script", "[click](", "\n| injected"):
        assert raw not in md, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\[click\\](javascript:alert(1))" in md and "\\_em\\_" in md
    assert "=1+2\\|x" in md
    lines = md.splitlines()
    for i, line in enumerate(lines):  # every table row has its header's number of cells
        if line.startswith("|") and not lines[i - 1].startswith("|"):
            header = unescaped_pipes(line)
        if line.startswith("|"):
            assert unescaped_pipes(line) == header, line
    [failed_row] = [x for x in lines if x.startswith("| failed-run |")]
    assert "boom \\| injected \\| row \\| &lt;script&gt;" in failed_row

    rows = {r["run"]: r for r in read_csv(out)}
    assert set(rows) == {"&lt;img src=x onerror=alert(1)&gt;", LINK, "'=1+2|x",
                         "_em_ $\\frac$"}
    assert "<" not in (out / "comparison.csv").read_text()
    assert all(not v.startswith(("=", "+", "@")) for r in rows.values() for v in r.values())

    page = Tags()
    page.feed((out / "report.html").read_text())
    assert page.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3",
                         "p", "div", "table", "tr", "th", "td", "img"}
    text = "".join(page.text)
    assert HOSTILE in text and LINK in text and "<script>alert(1)</script>" in text
    assert (out / "speedup.png").is_file()


def test_csv_cell():
    assert cmp.csv_cell("-") == "-" and cmp.csv_cell(-1.5) == -1.5
    assert [cmp.csv_cell(s) for s in ("=A1", "+1", "-1+2", "@SUM(A1)", "a<b>")] == [
        "'=A1", "'+1", "'-1+2", "'@SUM(A1)", "a&lt;b&gt;"]
