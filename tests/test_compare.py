"""python -m specbench.compare on fake run directories built from the recorded experiments."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from specbench import compare as cmp
from specbench.errors import UserError

EXP = Path(__file__).resolve().parents[1] / "experiments"
PNG = b"\x89PNG\r\n\x1a\n"


def recorded(alg: str, name="summary.json") -> dict:
    return json.loads((EXP / f"smollm2-{alg}-default" / name).read_text())


def make_run(root: Path, name: str, alg="medusa", seed=None, lr=None, tree_tau=None,
             settings=None, status=None, eval_json=True, lookahead=None, num_prompts=10) -> Path:
    """A copy of a recorded run with edits; the fingerprint follows the controlled settings, and
    eval.json settings are made equal across algorithms (the recorded ones used 10 vs 6 prompts).
    ``tree_tau`` sets the tree's tau and drops the chain's to 1, so the tree is the best draft."""
    d = root / name
    shutil.copytree(EXP / f"smollm2-{alg}-default", d)
    s = json.loads((d / "summary.json").read_text())
    if seed is not None:
        s["controlled"]["trainer"]["seed"] = seed
    if lr is not None:
        s["controlled"]["trainer"]["lr"] = lr
    s["algorithm_config"].update(settings or {})
    if status:
        s["status"], s["error"] = status, "RuntimeError: loss is NaN"
    blob = json.dumps(s["controlled"], sort_keys=True) + s["checklist"]["dataset_sha256"]
    s["fingerprint"] = "da47dfdd0148" if seed is None and lr is None else \
        hashlib.sha256(blob.encode()).hexdigest()[:12]
    (d / "summary.json").write_text(json.dumps(s))
    ev = json.loads((d / "eval.json").read_text())
    ev["settings"].update(num_prompts=num_prompts, max_new_tokens=64)
    if tree_tau is not None:
        ev["overall"][f"{alg}_tree"]["tau"] = tree_tau
        ev["overall"][f"{alg}_chain"]["tau"] = 1.0
    if lookahead is not None:  # a baseline: never the best draft method
        ev["overall"]["lookahead"] = dict(ev["overall"]["prompt_lookup"], tau=3.0,
                                          speedup=lookahead)
    (d / "eval.json").write_text(json.dumps(ev))
    if not eval_json:
        (d / "eval.json").unlink()
    return d


def read_csv(out: Path) -> list[dict]:
    with open(out / "comparison.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_ranking_within_group(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep, "0-medusa", tree_tau=1.5)
    make_run(sweep, "1-eagle3", alg="eagle3", tree_tau=1.6)
    make_run(sweep, "2-medusa", settings={"num_heads": 3}, tree_tau=1.9)
    res = cmp.compare([sweep], plots=False)
    assert res["out"] == sweep / "comparison"
    [g] = res["groups"]
    assert g["metric"] == "decoding tau"
    assert [r["name"] for r in g["runs"]] == ["2-medusa", "1-eagle3", "0-medusa"]
    rows = read_csv(res["out"])
    assert [(r["rank"], r["run"], r["settings"]) for r in rows] == [
        ("1", "2-medusa", "num_heads=3"), ("2", "1-eagle3", "-"), ("3", "0-medusa", "num_heads=4")]
    assert float(rows[0]["score"]) == 1.9 and rows[0]["best_method"] == "tree"
    md = (res["out"] / "comparison.md").read_text()
    assert "Ranked by decoding tau" in md and "not comparable" not in md


def test_different_decoding_settings_fall_back_to_tau_sim(tmp_path):
    make_run(tmp_path / "runs", "medusa", num_prompts=10)
    make_run(tmp_path / "runs", "eagle3", alg="eagle3", num_prompts=6)
    res = cmp.compare([tmp_path / "runs"], out=tmp_path / "o", plots=False)
    assert res["groups"][0]["metric"] == "tau_sim"
    assert any("decode.num_prompts 6 vs 10" in n and "tau_sim" in n for n in res["notes"])
    by_tau_sim = sorted(("medusa", "eagle3"),
                        key=lambda a: -recorded(a)["eval_split"]["tau_sim"])
    assert [r["name"] for r in res["groups"][0]["runs"]] == by_tau_sim


def test_lr_mismatch_is_not_comparable(tmp_path, capsys):
    make_run(tmp_path, "medusa", tree_tau=1.5)
    make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    make_run(tmp_path, "medusa-lr", lr=0.001)
    out = tmp_path / "cmp"
    assert cmp.main([str(tmp_path), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "not comparable: group 1 vs group 2: trainer.lr 0.003 vs 0.001" in printed
    md = (out / "comparison.md").read_text()
    assert "not comparable: group 1 vs group 2: trainer.lr 0.003 vs 0.001" in md
    assert md.count("## Group ") == 2
    rows = read_csv(out)
    assert {(r["run"], r["group"], r["rank"]) for r in rows} == {
        ("eagle3", "1", "1"), ("medusa", "1", "2"), ("medusa-lr", "2", "1")}
    assert "warning" not in rows[0]


def test_allow_mismatch_warning_column(tmp_path):
    make_run(tmp_path, "medusa", tree_tau=1.5)
    make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    make_run(tmp_path, "medusa-lr", lr=0.001, tree_tau=2.5)
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", allow_mismatch=True, plots=False)
    rows = {r["run"]: r for r in read_csv(res["out"])}
    assert rows["medusa-lr"]["rank"] == "1"  # ranked together with the others
    assert rows["medusa-lr"]["warning"] == "differs: trainer.lr 0.001 vs 0.003"
    assert rows["medusa"]["warning"] == rows["eagle3"]["warning"] == "reference group"
    md = (res["out"] / "comparison.md").read_text()
    assert "All runs (--allow-mismatch)" in md and "WARNING: --allow-mismatch" in md
    assert "| warning |" in md and "differs: trainer.lr 0.001 vs 0.003" in md


@pytest.mark.parametrize("eagle_taus,verdict", [
    ((1.60, 1.64), "2 seeds: no verdict (Welch's t-test needs 3 of each)"),
    ((1.90, 1.92), "2 seeds: no verdict (Welch's t-test needs 3 of each)"),
    ((1.60, 1.64, 1.62), "not significant (Welch's t-test, p = 0.764, 3 vs 3 seeds)"),
    ((1.90, 1.92, 1.94), "significant (Welch's t-test, p = 0.0272, 3 vs 3 seeds)")])
def test_seed_repeats(tmp_path, eagle_taus, verdict):
    for seed, tau in zip((0, 1, 2), (1.5, 1.6, 1.7)):
        make_run(tmp_path, f"medusa-s{seed}", seed=seed, tree_tau=tau)
    for seed, tau in zip((0, 1, 2), eagle_taus):
        make_run(tmp_path, f"eagle3-s{seed}", alg="eagle3", seed=seed, tree_tau=tau)
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    [g] = res["groups"]  # seeds differ, fingerprints differ, still one group
    assert len(g["fingerprints"]) == 3 and not res["notes"]
    configs = {c["config"]: c for c in g["configs"]}
    m, e = configs["medusa"], configs["eagle3"]
    assert (m["n"], m["seeds"]) == (3, [0, 1, 2])
    assert m["mean"] == pytest.approx(1.6) and m["std"] == pytest.approx(0.1)
    assert e["mean"] == pytest.approx(sum(eagle_taus) / len(eagle_taus))
    assert e["std"] == pytest.approx(statistics.stdev(eagle_taus))
    assert g["verdict"].endswith(verdict)
    from scipy.stats import ttest_ind  # the same p-value as scipy's Welch test

    if len(eagle_taus) == 3:
        p = ttest_ind(eagle_taus, (1.5, 1.6, 1.7), equal_var=False).pvalue
        assert f"p = {p:.3g}" in g["verdict"]
    md = (res["out"] / "comparison.md").read_text()
    assert "1.600 ± 0.100 (n=3)" in md
    assert f"{e['mean']:.3f} ± {e['std']:.3f} (n={len(eagle_taus)})" in md
    assert f"top two: eagle3 vs medusa: decoding tau difference {e['mean'] - 1.6:.3f}" in md


def test_csv_columns_and_values(tmp_path):
    make_run(tmp_path, "medusa", tree_tau=1.5)
    make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    s = json.loads((tmp_path / "medusa" / "summary.json").read_text())
    s["train"].pop("flops", None)  # as in summaries written before train.flops existed
    (tmp_path / "medusa" / "summary.json").write_text(json.dumps(s))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    rows = read_csv(res["out"])
    for col in ("group", "rank", "run", "algorithm", "settings", "fingerprint", "seed",
                "trainable_params", "train_flops", "train_time_s", "train_tokens_per_s",
                "final_train_loss", "eval_loss", "tau_sim", "chain_tau", "chain_speedup",
                "tree_tau", "tree_speedup", "prompt_lookup_speedup", "exact", "tau_coding",
                "medusa.num_heads", "eagle3.ttt_length"):
        assert col in rows[0], col
    e, m = rows  # eagle3 ranks first (tree tau 1.6 > 1.5)
    rs, rm = recorded("eagle3"), recorded("medusa")
    assert (e["run"], m["run"], e["rank"], m["rank"]) == ("eagle3", "medusa", "1", "2")
    assert e["fingerprint"] == m["fingerprint"] == "da47dfdd0148"
    assert int(e["trainable_params"]) == rs["train"]["trainable_params"]
    assert int(m["trainable_params"]) == rm["train"]["trainable_params"]
    assert float(e["train_flops"]) == rs["train"]["flops"]["total"]
    assert m["train_flops"] == "-"
    assert float(m["tree_tau"]) == 1.5 and float(m["chain_tau"]) == 1.0
    speedup = recorded("medusa", "eval.json")["overall"]["medusa_tree"]["speedup"]
    assert float(m["tree_speedup"]) == speedup
    assert float(m["eval_loss"]) == rm["eval_split"]["loss"]
    assert float(m["tau_sim"]) == rm["eval_split"]["tau_sim"]
    cats = recorded("medusa", "eval.json")["per_category"]
    c = sorted(cats)[0]
    assert float(m[f"tau_{c}"]) == cats[c]["medusa_tree"]["tau"]
    assert (m["medusa.num_heads"], m["eagle3.ttt_length"]) == ("4", "-")
    assert e["eagle3.ttt_length"] == str(rs["algorithm_config"]["ttt_length"])
    assert e["exact"] == m["exact"] == "yes"
    # the confounds beside the ranking: horizon, target features, draft FLOPs
    assert (e["horizon"], m["horizon"]) == (f"TTT depth {rs['algorithm_config']['ttt_length']}",
                                            "4 heads")
    assert e["target_features"] == m["target_features"] == "-"  # recorded before the key
    assert float(e["draft_flops"]) == rs["train"]["flops"]["draft_forward_backward"]


def test_report_shows_target_features_and_horizon(tmp_path):
    d = make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    s = json.loads((d / "summary.json").read_text())
    s["target_features"] = {"layers": [1, 14, 26], "final_hidden": True}
    (d / "summary.json").write_text(json.dumps(s))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    row = read_csv(res["out"])[0]
    assert row["target_features"] == "1,14,26 + final"
    ev = json.loads((d / "eval.json").read_text())
    ev["overall"]["eagle3_chain"]["acceptance_by_position"] = [0.5, 0.25, 0.125]
    (d / "eval.json").write_text(json.dumps(ev))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "Acceptance by draft position" in md
    assert "| eagle3 | chain | 0.50 | 0.25 | 0.12 |" in md
    assert "| horizon | features |" in md and "draft FLOPs" in md
    assert "TTT depth 7" in md and "1,14,26 + final" in md


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.rows, self.tags, self.urls = [], 0, set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        self.rows += tag == "tr"
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        self.urls += [v for k, v in attrs if k in ("src", "href") and not v.startswith("data:")]


def test_plots_and_self_contained_report(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        make_run(sweep, f"h4-s{seed}", seed=seed, tree_tau=1.5 + seed / 10)
    make_run(sweep, "h3", settings={"num_heads": 3}, tree_tau=1.4, lookahead=1.2)
    make_run(sweep, "eagle3", alg="eagle3", eval_json=False)
    res = cmp.compare([sweep])
    out = sweep / "comparison"
    names = ["loss_curves.png", "acceptance.png", "tau_vs_param.png", "speedup.png",
             "speedup_vs_tau.png"]
    for name in names:
        assert (out / name).read_bytes().startswith(PNG), name
    md = (out / "comparison.md").read_text()
    assert all(f"]({n})" in md for n in names)
    assert res["groups"][0]["metric"] == "tau_sim"  # eagle3 has no eval.json
    rows = {r["run"]: r for r in read_csv(out)}
    assert rows["h3"]["best_method"] == "tree" and rows["h3"]["lookahead_speedup"] == "1.2"
    assert rows["h4-s0"]["lookahead_speedup"] == "-"
    page = _Html()
    page.feed((out / "report.html").read_text())
    assert len(page.imgs) == 5 and not page.urls
    assert not page.tags & {"link", "script", "iframe"}
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert page.rows >= 1 + 4  # header + one row per run in the ranked table


def test_failed_jobs_are_listed(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep, "0-medusa")
    make_run(sweep, "1-medusa", status="failed")
    (sweep / "2-eagle3" / ".hydra").mkdir(parents=True)  # a Hydra job that crashed early
    (sweep / "sweep.json").write_text(json.dumps({"jobs": [
        {"dir": "0-medusa", "status": "completed"},
        {"dir": "3-medusa", "status": "failed", "error": "CUDA out of memory",
         "overrides": ["algorithm.num_heads=9"]}]}))
    res = cmp.compare([sweep], plots=False)
    failed = {f["name"]: f for f in res["failed"]}
    assert set(failed) == {"1-medusa", "2-eagle3", "3-medusa"}
    assert failed["3-medusa"]["error"] == "CUDA out of memory"
    assert [r["name"] for r in res["runs"]] == ["0-medusa"]
    md = (res["out"] / "comparison.md").read_text()
    assert "Failed or unfinished runs" in md
    assert "| 3-medusa | failed | CUDA out of memory |" in md
    assert "RuntimeError: loss is NaN" in md


def test_errors(tmp_path, capsys):
    assert cmp.main([str(tmp_path / "nope"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "summary.json" in err
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="contains no finished specbench runs"):
        cmp.compare([tmp_path / "empty"], plots=False)
    make_run(tmp_path, "bad", status="failed")
    with pytest.raises(UserError, match="none of the runs given completed"):
        cmp.compare([tmp_path / "bad"], plots=False)


def test_default_out_for_single_runs_and_csv_format(tmp_path, monkeypatch, capsys):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b", alg="eagle3")
    monkeypatch.chdir(tmp_path)
    assert cmp.main([str(a), str(b), "--no-plots", "--format", "csv"]) == 0
    assert (tmp_path / "comparison" / "comparison.csv").is_file()
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "comparison" / "comparison.csv").read_text()


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed")
def test_report_renders_in_chromium(tmp_path):
    make_run(tmp_path, "medusa")
    make_run(tmp_path, "eagle3", alg="eagle3")
    res = cmp.compare([tmp_path], out=tmp_path / "cmp")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,2000",
                    (res["out"] / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000


# ---------------------------------------------------------------------------------- --tune

LR_TAUS = {("medusa", 0.001): (1.4, 1.5), ("medusa", 0.003): (1.8, 1.9),
           ("medusa", 0.01): (1.6, 1.6), ("eagle3", 0.001): (1.5, 1.5),
           ("eagle3", 0.003): (1.7, 1.7), ("eagle3", 0.01): (2.0, 2.2)}


def lr_sweep(root: Path, taus=LR_TAUS, sweep_json=True) -> Path:
    """medusa, eagle3 x trainer.lr x two seeds (decoding tau per seed), as lr_matched sweeps."""
    for (alg, lr), ts in taus.items():
        for seed, tau in enumerate(ts):
            make_run(root, f"{alg}-lr{lr}-s{seed}", alg=alg, lr=lr, seed=seed, tree_tau=tau)
    if sweep_json:
        (root / "sweep.json").write_text(json.dumps({
            "status": "completed", "sweep_overrides": ["+experiment=lr_matched"],
            "sweeper_params": {"algorithm": "medusa,eagle3", "trainer.lr": "1e-3,3e-3,1e-2"},
            "jobs": []}))
    return root


def test_tune_ranks_each_algorithm_at_its_best_lr(tmp_path, capsys):
    sweep = lr_sweep(tmp_path / "lr_matched")
    assert cmp.main([str(sweep), "--tune", "trainer.lr"]) == 0
    printed = capsys.readouterr().out
    res = cmp.compare([sweep], tune=["trainer.lr"])  # again, for the returned structure
    [g] = res["groups"]  # the lr grid no longer splits the runs
    assert len(g["runs"]) == 12 and len(g["fingerprints"]) == 6 and not res["notes"]
    t = g["tuning"]
    assert t["grid"] == [(0.001,), (0.003,), (0.01,)]
    e, m = t["best"]  # eagle3 at lr 0.01 (mean 2.1) beats medusa at lr 0.003 (mean 1.85)
    assert (e["config"], e["value"], e["n"]) == ("eagle3", (0.01,), 2)
    assert e["mean"] == pytest.approx(2.1) and e["std"] == pytest.approx(0.2 / 2 ** 0.5)
    assert (m["config"], m["value"]) == ("medusa", (0.003,))
    assert m["mean"] == pytest.approx(1.85) and m["std"] == pytest.approx(0.1 / 2 ** 0.5)
    assert e["tuned"] == "trainer.lr=0.01 (best of 0.001, 0.003, 0.01)"
    assert m["tuned"] == "trainer.lr=0.003 (best of 0.001, 0.003, 0.01)"
    assert t["verdict"].startswith("eagle3 vs medusa: decoding tau difference 0.250")
    assert t["verdict"].endswith("2 seeds: no verdict (Welch's t-test needs 3 of each)")
    cells = {(c["config"], c["value"][0]): c for c in t["cells"]}
    assert len(cells) == 6 and [c for c in cells.values() if c["best"]] == [e["cells"][2],
                                                                            m["cells"][1]]
    assert cells[("medusa", 0.001)]["mean"] == pytest.approx(1.45)
    assert cells[("eagle3", 0.003)]["mean"] == pytest.approx(1.7)
    assert g["configs"] is t["best"] and g["verdict"] == t["verdict"]
    md = (res["out"] / "comparison.md").read_text()
    for text in ("Each algorithm config at its best trainer.lr (equal tuning budget)",
                 "| 1 | eagle3 | trainer.lr=0.01 (best of 0.001, 0.003, 0.01) | 2.100 ± 0.141 "
                 "(n=2)",
                 "| 2 | medusa | trainer.lr=0.003 (best of 0.001, 0.003, 0.01) | 1.850 ± 0.071 "
                 "(n=2)",
                 "Every (config, trainer.lr)", "| medusa | 0.001 | 2 | 0 1 | 1.450 ± 0.071 (n=2)",
                 "trainer.lr=0.003 (best)"):
        assert text in md, text
    for text in ("trainer.lr=0.01 (best of 0.001, 0.003, 0.01)", "2.100 ± 0.141 (n=2)",
                 "top two: eagle3 vs medusa", "trainer.lr=0.003 (best)"):
        assert text in printed, text
    assert "not comparable" not in md and "Seed repeats" not in md
    rows = read_csv(res["out"])
    best = {(r["run"], r["trainer.lr"]) for r in rows if r["tuned_best"] == "yes"}
    assert best == {("eagle3-lr0.01-s0", "0.01"), ("eagle3-lr0.01-s1", "0.01"),
                    ("medusa-lr0.003-s0", "0.003"), ("medusa-lr0.003-s1", "0.003")}
    assert (res["out"] / "tau_vs_tuned.png").read_bytes().startswith(PNG)


def test_tune_unequal_grid_is_a_fairness_warning(tmp_path):
    taus = {k: v for k, v in LR_TAUS.items() if k != ("eagle3", 0.01)}  # eagle3 lacks 0.01
    res = cmp.compare([lr_sweep(tmp_path, taus)], out=tmp_path / "cmp", plots=False,
                      tune=["trainer.lr"])
    [g] = res["groups"]
    m, e = g["tuning"]["best"]  # now medusa (1.85 at 0.003) beats eagle3 (1.7 at 0.003)
    assert (m["config"], m["value"], e["config"], e["value"]) == (
        "medusa", (0.003,), "eagle3", (0.003,))
    assert e["missing"] == [(0.01,)] and m["missing"] == []
    assert e["tuned"] == "trainer.lr=0.003 (best of 0.001, 0.003)"
    [note] = res["notes"]
    assert note.startswith("WARNING: unequal tuning budget (group 1): eagle3 has no completed "
                           "run at trainer.lr=0.01 (the group's grid of trainer.lr: 0.001, "
                           "0.003, 0.01)")
    assert "WARNING: unequal tuning budget" in (res["out"] / "comparison.md").read_text()


def test_without_tune_lr_groups_stay_separate(tmp_path):
    sweep = lr_sweep(tmp_path / "lr_matched")
    res = cmp.compare([sweep], plots=False)
    assert len(res["groups"]) == 3 and all("tuning" not in g for g in res["groups"])
    assert {tuple(sorted({r["controlled"]["trainer.lr"] for r in g["runs"]}))
            for g in res["groups"]} == {(0.001,), (0.003,), (0.01,)}
    assert sum(n.startswith("not comparable: ") and "trainer.lr" in n
               for n in res["notes"]) == 3
    hint = res["notes"][-1]  # the sweep swept trainer.lr: suggest --tune
    assert hint.startswith("hint: the groups differ only in trainer.lr") and \
        "--tune trainer.lr" in hint
    other = lr_sweep(tmp_path / "plain", sweep_json=False)  # no record of a sweep: no hint
    assert not any(n.startswith("hint:") for n in cmp.compare([other], plots=False)["notes"])


def test_tune_errors(tmp_path, capsys):
    make_run(tmp_path, "medusa")
    for key, msg in (("trainer.seed", "repeat key"), ("algorithm.num_heads", "not controlled"),
                     ("trainer.lrr", "did you mean trainer.lr")):
        assert cmp.main([str(tmp_path), "--no-plots", "--tune", key]) == 2
        assert msg in capsys.readouterr().err, key


def test_python_m_and_the_shipped_report_template(tmp_path):
    """compare is a package: ``python -m specbench.compare`` runs it, and the HTML template
    it renders is listed as package data (so it is in the wheel, not only in the checkout)."""
    import sys
    from importlib.resources import files

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    make_run(tmp_path, "medusa")
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "specbench.compare", str(tmp_path / "medusa"),
                           "--out", str(out), "--no-plots", "--format", "markdown"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (out / "comparison.md").read_text()
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    template = files("specbench.compare") / "templates" / "report.html.j2"
    assert template.is_file()
    pyproject = tomllib.loads((EXP.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["specbench"]
    root = Path(files("specbench"))
    assert any(Path(template) in set(root.glob(g)) for g in shipped)


def test_seed_test_rules():
    from specbench.compare.stats import seed_test

    assert seed_test([1.0], [2.0, 2.1, 2.2]) == ("one seed: no verdict", None)
    verdict, p = seed_test([1.5, 1.6, 1.7], [1.9, 1.92, 1.94])
    assert verdict.startswith("significant") and p < 0.05
    verdict, p = seed_test([1.5, 1.6, 1.7], [1.6, 1.64, 1.62])
    assert verdict.startswith("not significant") and p > 0.05
    # the old rule (|diff| > std_a + std_b: 0.21 > 0.1 + 0.1) called this "significant"
    verdict, p = seed_test([1.71, 1.81, 1.91], [1.5, 1.6, 1.7])
    assert 0.05 < p < 0.1 and verdict.startswith("not significant")


def test_tables_show_the_bootstrap_intervals(tmp_path):
    """A run whose eval.json has 95% bootstrap intervals shows them beside tau and speedup,
    and the CSV carries both ends."""
    d = make_run(tmp_path, "medusa", tree_tau=1.5)
    ev = json.loads((d / "eval.json").read_text())
    ev["overall"]["medusa_tree"].update(tau_ci95=[1.41, 1.58], speedup_ci95=[0.42, 0.55])
    (d / "eval.json").write_text(json.dumps(ev))
    make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    md = (res["out"] / "comparison.md").read_text()
    assert r"1.500 \[1.41, 1.58\]" in md  # markdown escapes the brackets
    rows = {r["run"]: r for r in read_csv(res["out"])}
    assert rows["medusa"]["tree_tau_ci95_lo"] == "1.41"
    assert rows["medusa"]["tree_speedup_ci95_hi"] == "0.55"
    assert rows["eagle3"]["tree_tau_ci95_lo"] == "-"


def _per_prompt_counts(d, alg, counts):
    """Give run ``d``'s eval.json per-prompt tree counts: ``counts`` tokens in 10 verify steps."""
    ev = json.loads((d / "eval.json").read_text())
    ev["per_prompt"] = [{"id": i, "turn": 0, f"{alg}_tree": {"step_tokens": t,
                                                          "verify_steps": 10}}
                        for i, t in enumerate(counts)]
    ev["settings"]["samples"] = len(counts)
    (d / "eval.json").write_text(json.dumps(ev))


def test_headline_names_the_winner_the_interval_the_evidence_and_fairness(tmp_path):
    """One seed each, decoded on the same prompts: a paired bootstrap interval of the tau
    difference, "one seed: no verdict", the evidence and the controlled settings in a line."""
    from specbench.compare.headline import paired_bootstrap

    per_prompt = _per_prompt_counts
    m = make_run(tmp_path, "medusa", tree_tau=1.5)
    e = make_run(tmp_path, "eagle3", alg="eagle3", tree_tau=1.6)
    per_prompt(m, "medusa", [15, 14, 16, 15, 15, 14, 16, 15, 15, 15])
    per_prompt(e, "eagle3", [17, 15, 17, 16, 16, 15, 17, 16, 16, 15])
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    md = (res["out"] / "comparison.md").read_text()
    head = md.split("## ")[0]
    assert "Winner: eagle3, decoding tau 1.600 against medusa's 1.500: difference +0.100" in head
    runs = {r.name: r for r in res["groups"][0]["runs"]}
    lo, hi = paired_bootstrap(runs["eagle3"], runs["medusa"])
    assert 0 < lo < 0.1 < hi  # per-prompt differences 0..0.2, mean 0.1
    assert f"95% CI \\[{lo:.3f}, {hi:.3f}\\] (paired bootstrap over prompts)" in head
    assert "one seed: no verdict" in head
    assert "Evidence: 10 prompts (10 turns) x 64 new tokens x 1 seed(s) per config" in head
    assert "Controlled: target HuggingFaceTB/SmolLM2-135M-Instruct" in head
    assert "Fair: one fingerprint (da47dfdd0148)" in head
    assert head.index("Winner") < head.index("completed runs in 1 group")  # first screen


def test_headline_interval_on_the_shared_seed_while_seeds_are_uneven(tmp_path):
    """Medusa has seeds 0 and 1, EAGLE-3 only seed 0 (a seed sweep half done): the headline's
    interval is the paired bootstrap of the two seed-0 runs, says so, and is not the one of
    Medusa's seed 1; the seed verdict stays "one seed: no verdict"."""
    from specbench.compare.headline import paired_bootstrap

    m0 = make_run(tmp_path, "0-medusa-seed0", seed=0, tree_tau=1.5)
    m1 = make_run(tmp_path, "0-medusa-seed1", seed=1, tree_tau=1.52)
    e0 = make_run(tmp_path, "1-eagle3-seed0", alg="eagle3", seed=0, tree_tau=1.6)
    _per_prompt_counts(m0, "medusa", [15, 14, 16, 15, 15, 14, 16, 15, 15, 15])
    _per_prompt_counts(m1, "medusa", [16, 15, 15, 14, 16, 15, 15, 16, 15, 15])
    _per_prompt_counts(e0, "eagle3", [17, 15, 17, 16, 16, 15, 17, 16, 16, 15])
    res = cmp.compare([tmp_path], out=tmp_path / "cmp", plots=False)
    head = (res["out"] / "comparison.md").read_text().split("## ")[0]
    runs = {r.name: r for r in res["groups"][0]["runs"]}
    lo, hi = paired_bootstrap(runs["1-eagle3-seed0"], runs["0-medusa-seed0"])
    other = paired_bootstrap(runs["1-eagle3-seed0"], runs["0-medusa-seed1"])
    assert (lo, hi) != other
    assert "Winner: eagle3, decoding tau 1.600 against medusa's 1.510: difference +0.090" in head
    assert (f"95% CI \\[{lo:.3f}, {hi:.3f}\\] (paired bootstrap over prompts, seed 0 of each)"
            in head)
    assert "across seeds: one seed: no verdict" in head
    assert "no interval" not in head


def test_decoding_plots_with_intervals(tmp_path):
    """eval.json with accepted lengths, decoding acceptance and intervals: the histogram, the
    decoding acceptance (apart from the training top-1) and speedup against tau."""
    for name, alg, lengths in (("medusa", "medusa", [1, 2, 2, 3, 1]),
                               ("eagle3", "eagle3", [2, 3, 3, 4, 1])):
        d = make_run(tmp_path, name, alg=alg, tree_tau=sum(lengths) / len(lengths))
        ev = json.loads((d / "eval.json").read_text())
        ev["overall"][f"{alg}_tree"].update(tau_ci95=[1.5, 2.4], speedup_ci95=[0.4, 0.7],
                                            acceptance_by_position=[0.6, 0.4, 0.2])
        for p in ev["per_prompt"]:
            p[f"{alg}_tree"]["accepted_lengths"] = lengths
        (d / "eval.json").write_text(json.dumps(ev))
    res = cmp.compare([tmp_path], out=tmp_path / "cmp")
    out = res["out"]
    for name in ("accepted_lengths.png", "decode_acceptance.png", "speedup_vs_tau.png"):
        assert (out / name).read_bytes().startswith(PNG), name
    md = (out / "comparison.md").read_text()
    assert "Per-position acceptance (decoding)" in md and "Accepted-length histogram" in md
