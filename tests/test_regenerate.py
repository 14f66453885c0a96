"""`python -m specbench.data.regenerate`: batched greedy answers, two-turn prompts answered with
their history, shards that survive a kill, refused mixed settings, and a .jsonl.gz output that
the data loader reads."""

from __future__ import annotations

import gzip
import json

import pytest

from specbench.config import compose
from specbench.data import regenerate
from specbench.data.conversations import load_conversations
from specbench.errors import UserError

PROMPTS = [{"id": f"p{i}", "category": "c", "prompt": f"question number {i}?"} for i in range(5)]
PROMPTS += [{"id": "t1", "category": "c", "turns": ["first turn", "and a follow-up"]},
            {"id": "l1", "category": "c", "prompt": "write a long one", "long": True}]
ARGS = ["--model", "tiny-llama", "--max-new-tokens", "6", "--long-max-new-tokens", "9",
        "--batch-size", "2", "--shard-rows", "3", "--dtype", "float32"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def write_prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS))
    return path


def run(tmp_path, out="chat.jsonl.gz", extra=()):
    prompts = write_prompts(tmp_path)
    return regenerate.main(["--prompts", str(prompts), "--out", str(tmp_path / out), *ARGS,
                            *extra])


def read_gz(path):
    return [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]


def test_answers_every_turn_in_the_prompts_order_and_records_settings(tmp_path):
    assert run(tmp_path) == 0
    convs = read_gz(tmp_path / "chat.jsonl.gz")
    assert [c["id"] for c in convs] == [r["id"] for r in PROMPTS]
    roles = {c["id"]: [m["role"] for m in c["messages"]] for c in convs}
    assert roles["t1"] == ["user", "assistant", "user", "assistant"]
    assert roles["p0"] == ["user", "assistant"]
    assert convs[5]["messages"][2]["content"] == "and a follow-up"
    meta = json.loads((tmp_path / "chat.generation.json").read_text())
    assert meta["rows"] == 7 and meta["assistant_turns"] == 8 and meta["shards"] == 3
    assert meta["max_new_tokens"] == 6 and meta["long_max_new_tokens"] == 9
    assert 0 < meta["generated_tokens"] <= 7 * 6 + 9


def test_the_data_loader_reads_jsonl_gz(tmp_path):
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    regenerate.write_conversations(tmp_path / "c.jsonl.gz", [conv] * 3)
    data = compose(["data=jsonl", f"data.path={tmp_path / 'c.jsonl.gz'}"]).data
    loaded = load_conversations(data)
    assert len(loaded.rows) == 3 and loaded.rows[0] == conv["messages"]
    plain = tmp_path / "c.jsonl"
    plain.write_text((json.dumps(conv) + "\n") * 3)
    assert load_conversations(compose(["data=jsonl", f"data.path={plain}"]).data).sha256 \
        == loaded.sha256


def test_the_same_answers_batched_or_one_by_one(tmp_path):
    assert run(tmp_path, "a.jsonl") == 0
    assert run(tmp_path, "b.jsonl", ["--batch-size", "1", "--shard-rows", "1"]) == 0
    a, b = ((tmp_path / n).read_text() for n in ("a.jsonl", "b.jsonl"))
    assert a == b  # fp32 greedy with left padding: batching does not change a token


def test_a_killed_run_resumes_from_its_finished_shards(tmp_path, monkeypatch):
    calls = []
    real = regenerate.answer_shard

    def dies_on_the_second_shard(target, rows, settings):
        calls.append([r["id"] for r in rows])
        if calls == [["p0", "p1", "p2"], ["p3", "p4", "t1"]]:
            raise Killed
        return real(target, rows, settings)

    monkeypatch.setattr(regenerate, "answer_shard", dies_on_the_second_shard)
    with pytest.raises(Killed):
        run(tmp_path)
    work = tmp_path / "chat.jsonl.gz.shards"
    assert sorted(p.name for p in work.iterdir()) == ["settings.json", "shard-00000.json",
                                                      "shard-00000.jsonl"]
    assert not (tmp_path / "chat.jsonl.gz").exists()
    calls.clear()
    assert run(tmp_path) == 0
    assert calls == [["p3", "p4", "t1"], ["l1"]]  # the first shard is not answered again
    resumed = read_gz(tmp_path / "chat.jsonl.gz")
    monkeypatch.setattr(regenerate, "answer_shard", real)
    assert run(tmp_path, "fresh.jsonl.gz") == 0
    assert resumed == read_gz(tmp_path / "fresh.jsonl.gz")


def test_other_settings_over_old_shards_are_refused(tmp_path, capsys):
    assert run(tmp_path) == 0
    assert run(tmp_path, extra=["--max-new-tokens", "7"]) == 2
    err = capsys.readouterr().err
    assert "max_new_tokens differ" in err and "--work-dir" in err


def test_bad_prompt_files_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"turns": ["ok", ""]}\n')
    with pytest.raises(UserError, match="bad.jsonl:1: a row needs a non-empty 'prompt'"):
        regenerate.read_prompts(bad)
    with pytest.raises(UserError, match="does not exist"):
        regenerate.read_prompts(tmp_path / "missing.jsonl")
