"""The evaluator's inputs: prompt sets (Spec-Bench multi-turn, categories), the refusal of a
different target, and what it reports to W&B."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from specbench.config import compose
from specbench.errors import UserError
from specbench.evaluate import evaluate, load_questions

SPEC_BENCH = Path(__file__).parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"


def write_questions(path: Path) -> Path:
    rows = [{"question_id": 1, "category": "writing", "turns": ["Write a haiku.", "Now a limerick."]},
            {"question_id": 2, "category": "writing", "turns": ["Describe rain."]},
            {"question_id": 3, "category": "math", "turns": ["What is 2+2?"]},
            {"question_id": 4, "category": "qa", "turns": ["Who wrote Hamlet?"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_questions_round_robin_over_categories(tmp_path):
    qs = load_questions(str(write_questions(tmp_path / "q.jsonl")), 3)
    assert [q["id"] for q in qs] == [1, 3, 4]  # one per category before a second writing one
    assert qs[0]["turns"] == ["Write a haiku.", "Now a limerick."]
    embedded = load_questions(None, 5)
    assert len(embedded) == 5 and all(len(q["turns"]) == 1 for q in embedded)
    with pytest.raises(UserError, match="decode.prompts='nope.jsonl' does not exist"):
        load_questions("nope.jsonl", 2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"turns": ["ok"]}\n{"answer": 1}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: a question needs 'turns'"):
        load_questions(str(bad), 2)


def test_hub_prompts_without_network_is_a_clear_error():
    with pytest.raises(UserError, match="Download the question file"):
        load_questions("hub:HuggingFaceH4/mt_bench_prompts:train", 2)


@pytest.mark.skipif(not SPEC_BENCH.is_file(), reason="the shared Spec-Bench file is absent")
def test_real_spec_bench_file_covers_its_categories_and_multi_turn():
    qs = load_questions(str(SPEC_BENCH), 13)  # 8 MT-bench categories + 5 Spec-Bench tasks
    cats = {q["category"] for q in qs}
    assert len(cats) == 13 and {"translation", "rag", "math_reasoning"} <= cats, cats
    assert any(len(q["turns"]) == 2 for q in qs)  # MT-bench questions are two-turn


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from specbench.trainer import train

    from .conftest import tiny_overrides, write_conversations

    tmp = tmp_path_factory.mktemp("eval")
    conv = write_conversations(tmp / "conv.jsonl")
    train(compose(tiny_overrides(conv, **{"trainer.max_steps": 1})), tmp / "run")
    return tmp / "run"


def test_multi_turn_follows_the_models_own_answer(tiny_run, tmp_path):
    q = write_questions(tmp_path / "q.jsonl")
    result = evaluate(tiny_run, {"prompts": str(q), "num_prompts": 4, "max_new_tokens": 6})
    rows = result["per_prompt"]
    assert [(r["id"], r["turn"]) for r in rows] == [(1, 0), (1, 1), (3, 0), (4, 0), (2, 0)]
    assert result["settings"]["samples"] == 5 and result["settings"]["num_prompts"] == 4
    # the second turn's prompt holds the first turn, its answer and the new question
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"] + len("Now a limerick.")
    assert set(result["per_category"]) == {"writing", "math", "qa"}
    for cat in result["per_category"].values():
        assert all(m["exact"] for m in cat.values())


def test_refuses_another_target(tiny_run):
    with pytest.raises(UserError, match=r"trained on another target \(model.source: trained "
                                        r"'random', requested 'embedded'"):
        evaluate(tiny_run, {"num_prompts": 1}, model=["smollm2-135m"])
    with pytest.raises(UserError, match="model.arch"):
        evaluate(tiny_run, {"num_prompts": 1}, model=["tiny-qwen2"])


def test_eval_results_reach_wandb_summary_and_table(tiny_run):
    logged = {}

    class Run:
        summary: dict = {}

        def log(self, data):
            logged.update(data)

    from specbench.tracking import RunTracker

    tracker = RunTracker.__new__(RunTracker)
    tracker.wandb_run = Run()
    result = evaluate(tiny_run, {"num_prompts": 2, "max_new_tokens": 4}, tracker=tracker)
    s = Run.summary
    assert s["decode/autoregressive/tau"] == 1.0
    assert s["decode/medusa_chain/tau"] == result["overall"]["medusa_chain"]["tau"]
    # algorithm-neutral names, so that one chart compares algorithms
    assert s["decode/draft_chain/tau"] == s["decode/medusa_chain/tau"]
    assert s["decode/draft_tree/speedup"] == s["decode/medusa_tree/speedup"]
    assert not any(k.startswith("decode/draft_autoregressive") for k in s)
    tree = result["overall"]["medusa_tree"]  # the tree's node budget goes beside its tau
    assert s["decode/medusa_tree/draft_nodes_max"] == tree["draft_nodes_max"] > 0
    assert s["decode/medusa_tree/tokens_per_forward"] == tree["tokens_per_forward"]
    chain = result["overall"]["medusa_chain"]["acceptance_by_position"]  # per draft position
    assert chain and s["decode/medusa_chain/acceptance/0"] == chain[0]
    assert not any(k.startswith("decode/autoregressive/acceptance") for k in s)
    table = logged["decode/per_category"]
    assert table.columns[:3] == ["category", "method", "tau"]
    assert len(table.data) == 5 * (1 + len(result["per_category"]))


def test_standalone_evaluation_logs_a_wandb_eval_run(tiny_run, capsys):
    from specbench.evaluate import main

    from .test_checkpoint_tracking import _wandb_records

    before = set((tiny_run / "wandb").glob("offline-run-*")) if (tiny_run / "wandb").is_dir() \
        else set()
    assert main([str(tiny_run), "--num-prompts", "1", "--max-new-tokens", "3",
                 "--tracker", "offline"]) == 0
    assert "written:" in capsys.readouterr().out
    new = set((tiny_run / "wandb").glob("offline-run-*")) - before
    assert len(new) == 1
    records = list(_wandb_records(next(next(iter(new)).glob("*.wandb"))))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    fingerprint = json.loads((tiny_run / "summary.json").read_text())["fingerprint"]
    assert run.job_type == "medusa-eval" and run.run_group.endswith("." + fingerprint)
    keys = {u.key for r in records if r.WhichOneof("record_type") == "summary"
            for u in r.summary.update}
    assert "decode/medusa_tree/tau" in keys


@pytest.mark.parametrize("override,message", [
    ("decode.lookahead.level=2", "decode.lookahead.level=2 must be at least 3"),
    ("decode.num_prompts=0", "decode.num_prompts=0 must be at least 1"),
    ("decode.prompts=missing.jsonl", "decode.prompts='missing.jsonl' does not exist"),
    ("eval.num_prompts=0", "decode.num_prompts=0 must be at least 1"),  # the old name (issue 9)
])
def test_bad_eval_settings_fail_before_training(override, message):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "specbench", override, "model=tiny-llama",
                           "tracker.mode=disabled"], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=300)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "train medusa" not in proc.stderr  # no training started
    warned = "eval.* is now decode.*; the old name goes in the next release"
    assert (warned in proc.stderr) == override.startswith("eval."), proc.stderr[-2000:]


def test_a_run_recorded_before_the_rename_is_evaluated_with_its_eval_section(tiny_run,
                                                                              tmp_path):
    """Issue 9: config.json of a run recorded before eval was renamed decode holds an "eval"
    section; evaluate reads it (here num_prompts=1, max_new_tokens=3) like a "decode" one."""
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(tiny_run, old)
    cfg = json.loads((old / "config.json").read_text())
    section = cfg.pop("decode")
    cfg["eval"] = {**section, "num_prompts": 1, "max_new_tokens": 3,
                   "lookahead": {**section["lookahead"], "level": 4}}
    (old / "config.json").write_text(json.dumps(cfg))
    result = evaluate(old)
    assert result["settings"]["num_prompts"] == 1 and result["settings"]["max_new_tokens"] == 3
    assert result["settings"]["lookahead"]["level"] == 4
    assert evaluate(old, {"max_new_tokens": 2}, label="x")["settings"]["max_new_tokens"] == 2


def test_first_divergence_and_the_divergence_rate():
    from specbench.evaluate import divergence_rate, first_divergence

    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 9, 3], [1, 2, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2  # stopped early: differs where it ends
    # three turns of 100 greedy tokens: exact, diverging at 9 and at 49 -> 2 divergences
    # over 100 + 10 + 50 = 160 comparable tokens
    records = [{"first_divergence": None}, {"first_divergence": 9}, {"first_divergence": 49}]
    n, rate = divergence_rate(records, [100, 100, 100])
    assert n == 2 and rate == pytest.approx(1000 * 2 / 160)
    assert divergence_rate([{"first_divergence": None}], [50]) == (0, 0.0)


def test_eval_json_reports_divergence_per_method(tiny_run):
    """fp32: every method exact, 0 divergences per 1,000 tokens; the same fields in bf16,
    where kernels may differ between a 1-token and a k-token forward."""
    for dtype in ("float32", "bfloat16"):
        result = evaluate(tiny_run, {"num_prompts": 2, "max_new_tokens": 8, "dtype": dtype})
        for name, m in result["overall"].items():
            assert {"mismatches_per_1k_tokens", "first_divergence"} <= set(m), name
            if dtype == "float32":
                assert m["exact"] and m["mismatches_per_1k_tokens"] == 0.0
                assert m["first_divergence"] is None
            else:
                assert m["mismatches_per_1k_tokens"] >= 0.0
        assert all("first_divergence" in r[n] for r in result["per_prompt"]
                   for n in result["overall"])


def test_bootstrap_intervals_over_prompts():
    """The interval holds the pooled figure; one prompt repeated gives a zero-width one; the
    seed fixes it."""
    from specbench.evaluate import bootstrap_ci

    def row(steps, tokens, t_ar, t_m):
        return {"autoregressive": {"time_s": t_ar},
                "m": {"verify_steps": steps, "step_tokens": tokens, "time_s": t_m}}

    rows = [row(10, 20, 1.0, 0.5), row(10, 12, 1.0, 0.9), row(10, 15, 1.0, 0.7),
            row(5, 10, 0.5, 0.3)]
    ci = bootstrap_ci(rows, "m")
    tau = sum(r["m"]["step_tokens"] for r in rows) / sum(r["m"]["verify_steps"] for r in rows)
    assert ci["tau_ci95"][0] < tau < ci["tau_ci95"][1]
    assert 1.2 <= ci["tau_ci95"][0] and ci["tau_ci95"][1] <= 2.0  # within the per-prompt range
    assert ci == bootstrap_ci(rows, "m")
    same = bootstrap_ci([rows[0]] * 5, "m")
    assert same["tau_ci95"] == [2.0, 2.0] and same["speedup_ci95"] == [2.0, 2.0]


def test_eval_json_records_accepted_lengths_and_intervals(tiny_run):
    result = evaluate(tiny_run, {"num_prompts": 3, "max_new_tokens": 8})
    for name, m in result["overall"].items():
        lo, hi = m["tau_ci95"]
        assert lo <= m["tau"] + 1e-9 and m["tau"] <= hi + 1e-9, name
        for r in result["per_prompt"]:
            lengths = r[name]["accepted_lengths"]
            assert len(lengths) == r[name]["verify_steps"]
            assert sum(lengths) == r[name]["step_tokens"] and min(lengths) >= 1


def test_static_verify_mode_gives_the_same_evaluation(tiny_run):
    """decode.verify=static (the CUDA-graph path's CPU twin): every method still exact, the same
    tokens and acceptance as the dynamic path; the mode is recorded and graphs need a GPU."""
    dyn = evaluate(tiny_run, {"num_prompts": 3, "max_new_tokens": 10})
    sta = evaluate(tiny_run, {"num_prompts": 3, "max_new_tokens": 10, "verify": "static"})
    assert dyn["settings"]["verify"] == "dynamic" and sta["settings"]["verify"] == "static"
    for name, m in sta["overall"].items():
        assert m["exact"], name
        for a, b in zip(dyn["per_prompt"], sta["per_prompt"]):
            assert a[name]["accepted_lengths"] == b[name]["accepted_lengths"], name
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="decode.verify=graphs captures CUDA graphs"):
            evaluate(tiny_run, {"num_prompts": 1, "max_new_tokens": 4, "verify": "graphs"})
