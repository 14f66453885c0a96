"""Issue 10: evaluate's inputs give messages naming the file (prompts, config.json, summary.json,
weights), settings that cannot work are refused before training, a standalone evaluation never
overwrites eval.json, the target is loaded with the run's seed and never with trust_remote_code
taken from the run; bench --help works."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from specbench.config import compose
from specbench.errors import UserError
from specbench.evaluate import (
    check_decode_against_target,
    check_eval_settings,
    evaluate,
    load_questions,
    main,
)

from .conftest import tiny_overrides

FAST = {"num_prompts": 1, "max_new_tokens": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from specbench.trainer import train

    from .conftest import write_conversations

    tmp = tmp_path_factory.mktemp("safe-eval")
    conv = write_conversations(tmp / "c.jsonl")
    over = tiny_overrides(conv, **{"trainer.max_steps": 1, "trainer.seed": 5,
                                   "decode.enabled": "false"})
    train(compose(over), tmp / "run")
    return tmp / "run"


@pytest.fixture
def run(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


@pytest.mark.parametrize("content,expect", [
    (b"", "holds no questions"),
    (b"\n  \n", "holds no questions"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a UTF-8 text file"),
    (b"null\n", "a question is a JSON object"),
    (b'["turns", "x"]\n', "a question is a JSON object"),
    (b'"just a string"\n', "a question is a JSON object"),
])
def test_bad_prompts_files_name_the_file(tmp_path, content, expect):
    path = tmp_path / "q.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_questions(str(path), 2)
    assert str(path) in str(err.value) and expect in str(err.value)
    e = compose(["decode.prompts=" + str(path)]).decode
    with pytest.raises(UserError, match=expect):  # and before training
        check_eval_settings(e)


def test_hub_prompts_offline_are_refused_before_training(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = compose(["decode.prompts=hub:HuggingFaceH4/mt_bench_prompts:train"]).decode
    with pytest.raises(UserError, match="decode.prompts=hub:HuggingFaceH4/mt_bench_prompts"):
        check_eval_settings(e)
    check_eval_settings(e, prompts=False)  # without reading the prompts: nothing to say


def test_tree_ranks_above_the_vocabulary_are_refused(conv_file):
    ok = compose(tiny_overrides(conv_file, **{"algorithm.tree_choices": "[[0],[1],[0,0]]"}))
    check_decode_against_target(ok, 320)
    bad = compose(tiny_overrides(conv_file, **{"algorithm.tree_choices": "[[0],[400]]"}))
    with pytest.raises(UserError, match=r"algorithm.tree_choices uses rank 400.*320 tokens"):
        check_decode_against_target(bad, 320)
    default = compose(tiny_overrides(conv_file))  # the default tree uses ranks 0..9
    with pytest.raises(UserError, match="rank 9"):
        check_decode_against_target(default, 8)
    eagle = compose(tiny_overrides(conv_file, **{"algorithm": "eagle3",
                                                  "algorithm.draft_vocab_size": 16,
                                                  "algorithm.tree_top_k": 20}))
    with pytest.raises(UserError, match="algorithm.tree_top_k=20 exceeds the draft vocab"):
        check_decode_against_target(eagle, 320)
    eagle.algorithm.tree_top_k = 16
    check_decode_against_target(eagle, 320)


def test_standalone_evaluation_writes_its_own_file_and_an_index(run, capsys):
    assert not (run / "eval.json").exists()
    (run / "eval.json").write_text('{"training": "time"}')
    assert main([str(run), "--num-prompts", "1", "--max-new-tokens", "3", "--tracker",
                 "disabled", "--label", "fp32-a"]) == 0
    assert "eval-fp32-a.json" in capsys.readouterr().out
    assert (run / "eval.json").read_text() == '{"training": "time"}'  # untouched
    first = json.loads((run / "eval-fp32-a.json").read_text())
    assert first["label"] == "fp32-a" and first["settings"]["num_prompts"] == 1
    assert main([str(run), "--num-prompts", "1", "--max-new-tokens", "3", "--tracker",
                 "disabled"]) == 0  # a label of its own (the time)
    index = json.loads((run / "evals.json").read_text())["evals"]
    assert [e["label"] for e in index][0] == "fp32-a" and len(index) == 2
    assert all((run / e["file"]).is_file() for e in index)
    assert index[0]["tau"]["autoregressive"] == 1.0
    assert main([str(run), "--num-prompts", "1", "--tracker", "disabled", "--label",
                 "fp32-a"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert json.loads((run / "eval-fp32-a.json").read_text()) == first
    assert main([str(run), "--tracker", "disabled", "--label", "../x"]) == 2


def test_training_time_evaluation_still_writes_eval_json(run):
    result = evaluate(run, FAST)
    assert result["label"] is None and (run / "eval.json").is_file()
    assert not (run / "evals.json").exists()


def test_relative_run_path_with_offline_tracker(run, monkeypatch, capsys):
    from .test_checkpoint_tracking import _wandb_records

    metrics = (run / "metrics.jsonl").read_text()
    monkeypatch.chdir(run.parent)
    assert main(["run", "--num-prompts", "1", "--max-new-tokens", "3",
                 "--tracker", "offline"]) == 0
    files = list((run / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 1
    records = list(_wandb_records(files[0]))
    assert any(r.WhichOneof("record_type") == "run" and r.run.job_type == "medusa-eval"
               for r in records)
    assert (run / "metrics.jsonl").read_text() == metrics  # the training rows stay put


def test_failed_evaluation_leaves_no_wandb_run(run):
    (run / "draft.safetensors").unlink()
    assert main([str(run), "--num-prompts", "1", "--tracker", "offline"]) == 2
    assert not list(run.glob("wandb/offline-run-*"))


def test_the_target_is_loaded_with_the_runs_seed(run, monkeypatch):
    import specbench.evaluate as ev

    seeds = []
    real = ev.load_target

    def spy(model_cfg, seed=0, device="cpu"):
        seeds.append(seed)
        return real(model_cfg, seed=seed, device=device)

    monkeypatch.setattr(ev, "load_target", spy)
    result = evaluate(run, FAST)
    assert seeds == [5]  # trainer.seed=5: the random target the draft was trained on
    assert result["overall"]["medusa_chain"]["exact"]


def test_trust_remote_code_is_never_taken_from_the_run(run, monkeypatch):
    import specbench.evaluate as ev

    config = json.loads((run / "config.json").read_text())
    config["model"]["trust_remote_code"] = True
    (run / "config.json").write_text(json.dumps(config))
    seen = []
    real = ev.load_target

    def spy(model_cfg, *a, **k):
        seen.append(bool(model_cfg.trust_remote_code))
        return real(model_cfg, *a, **k)

    monkeypatch.setattr(ev, "load_target", spy)
    with pytest.raises(UserError, match="--trust-remote-code"):
        evaluate(run, FAST)
    assert seen == []
    evaluate(run, FAST, trust_remote_code=True)
    assert seen == [True]


@pytest.mark.parametrize("name,content,expect", [
    ("config.json", b"{", "not valid JSON"),
    ("config.json", b"[]", "not an object"),
    ("summary.json", b"\x00\xff", "not text"),
    ("summary.json", b'{"fingerprint": ', "not valid JSON"),
])
def test_corrupt_run_files_name_the_file(run, name, content, expect):
    (run / name).write_bytes(content)
    with pytest.raises(UserError) as err:
        evaluate(run, FAST)
    assert str(run / name) in str(err.value) and expect in str(err.value)


def test_flipped_draft_weights_are_refused(run):
    with open(run / "draft.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x7f")
    with pytest.raises(UserError, match="draft.safetensors does not match the sha256"):
        evaluate(run, FAST)


def test_latest_outside_the_run_is_refused(run):
    (run / "checkpoints" / "latest").write_text("../../../elsewhere\n")
    with pytest.raises(UserError, match="checkpoints/latest must name"):
        evaluate(run, FAST)


def test_bench_help(capsys):
    from specbench.bench import main as bench_main

    assert bench_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "python -m specbench.bench" in out and "--verify" in out
    assert bench_main(["--iters=x"]) == 2


def test_a_directory_as_prompts_is_named_a_directory(tmp_path):
    """Issue 10: decode.prompts=<a directory> said 'does not exist'."""
    with pytest.raises(UserError, match="is a directory, not a file"):
        check_eval_settings(compose([f"decode.prompts={tmp_path}"]).decode)


def test_more_prompts_than_there_are_is_said_and_recorded(run, capsys):
    """Issue 10: decode.num_prompts=1000 with the 60 embedded prompts (110 now) decoded them silently. Now a
    warning before training, a line at the evaluation, and eval.json records the request."""
    with pytest.warns(UserWarning, match=r"decode.num_prompts=1000, but .* holds only 110"):
        check_eval_settings(compose(["decode.num_prompts=1000"]).decode)
    questions = run.parent / "q.jsonl"
    questions.write_text("".join(json.dumps({"prompt": f"hi {i}"}) + "\n" for i in range(2)))
    result = evaluate(run, {"prompts": str(questions), "num_prompts": 5, "max_new_tokens": 2})
    assert "holds only 2 questions: the evaluation decodes those 2" in capsys.readouterr().out
    s = json.loads((run / "eval.json").read_text())["settings"]
    assert s["num_prompts"] == 2 and s["num_prompts_requested"] == 5
    assert result["settings"] == s
    result = evaluate(run, {"prompts": str(questions), "num_prompts": 2, "max_new_tokens": 2})
    assert "num_prompts_requested" not in result["settings"]  # only when short

