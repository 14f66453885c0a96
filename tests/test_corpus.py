"""The shipped large corpus (data=embedded-large): at least 4,000 conversations and 1M assistant
tokens answered by SmolLM2 itself, one per prompt of the prompt bank (so its deduplication
against the held-out prompts and Spec-Bench holds for the corpus), with two-turn and long-form
conversations, and a generation record that says how it was made."""

from __future__ import annotations

import collections
import json

from specbench.config import compose
from specbench.data.conversations import embedded_path, load_conversations
from specbench.io import file_sha256, iter_jsonl


def corpus() -> list[dict]:
    return [row for _, row in iter_jsonl(embedded_path("chat-large.jsonl.gz"))]


def test_the_corpus_loads_as_a_data_option():
    data = load_conversations(compose(["data=embedded-large"]).data)
    # one answer holds a byte sequence SmolLM2 generated that is not UTF-8 (mid-text): the
    # loader skips it, counted, as it would any undecodable row
    assert len(data.rows) >= 4000 and [b["line"] for b in data.bad_rows] == [3198]
    assert data.source == "embedded:chat-large.jsonl.gz"


def test_one_greedy_answer_per_prompt_turn():
    prompts = [row for _, row in iter_jsonl(embedded_path("prompts-large.jsonl"))]
    convs = corpus()
    assert [c["id"] for c in convs] == [p["id"] for p in prompts]
    for c, p in zip(convs, prompts):
        roles = [m["role"] for m in c["messages"]]
        assert roles == ["user", "assistant"] * len(p["turns"]), c["id"]
        assert [m["content"] for m in c["messages"][::2]] == p["turns"]
        assert c["category"] == p["category"]
    cats = collections.Counter(c["category"] for c in convs)
    assert len(cats) >= 10 and min(cats.values()) >= 250
    assert sum(len(p["turns"]) > 1 for p in prompts) >= 0.2 * len(prompts)


def test_the_generation_record():
    meta = json.loads(embedded_path("chat-large.generation.json").read_text())
    convs = corpus()
    assert meta["rows"] == len(convs) >= 4000
    assert meta["model"] == "smollm2-135m" and meta["decoding"] == "greedy"
    assert meta["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["prompts_sha256"] == file_sha256(embedded_path("prompts-large.jsonl"))
    assert meta["assistant_turns"] == sum(len(c["messages"]) // 2 for c in convs)
    assert meta["generated_tokens"] >= 1_000_000 and meta["generation_seconds"] > 0
    # about 4 characters a token: the text holds what the count says
    chars = sum(len(m["content"]) for c in convs for m in c["messages"]
                if m["role"] == "assistant")
    assert chars >= 3.5 * 1_000_000
    long_answers = sum(len(m["content"].split()) > 300 for c in convs for m in c["messages"]
                       if m["role"] == "assistant")
    assert long_answers >= 200  # the long-form prompts got long answers
