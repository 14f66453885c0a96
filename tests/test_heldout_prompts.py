"""The embedded held-out prompts: at least 100 over the training prompts' 10 categories, and
none of them seen in training or in Spec-Bench (normalised text, or any shared 8 words)."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from specbench.data.conversations import embedded_path
from specbench.evaluate import load_questions

SPEC_BENCH = Path(__file__).parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def normalised(text: str) -> str:
    return " ".join(words(text))


def grams(text: str, n: int = 8) -> set[tuple]:
    w = words(text)
    return {tuple(w[i: i + n]) for i in range(len(w) - n + 1)}


def rows(name: str) -> list[dict]:
    return [json.loads(x) for x in embedded_path(name).read_text().splitlines() if x.strip()]


def training_texts() -> list[str]:
    texts = [r["prompt"] for r in rows("prompts.jsonl")]
    texts += [m["content"] for r in rows("chat.jsonl") for m in r["messages"]
              if m["role"] == "user"]
    return texts


def overlaps(held: list[str], others: list[str]) -> list[str]:
    seen_text = {normalised(t) for t in others}
    seen_grams = set().union(*(grams(t) for t in others))
    return [h for h in held if normalised(h) in seen_text or grams(h) & seen_grams]


def test_at_least_100_prompts_over_the_training_categories():
    held = rows("heldout_prompts.jsonl")
    cats = collections.Counter(r["category"] for r in held)
    assert len(held) >= 100 and len(cats) == 10 and min(cats.values()) >= 10
    assert set(cats) == {r["category"] for r in rows("prompts.jsonl")}
    assert len({r["id"] for r in held}) == len(held)
    assert len({normalised(r["prompt"]) for r in held}) == len(held)
    # appended round by round after the first 60 (every earlier evaluation's prompts), so
    # load_questions picks the same ones as before for up to 60 prompts
    assert [q["id"] for q in load_questions(None, 10)] == [
        *(f"heldout-{i:03d}" for i in range(1, 9)), "heldout-013", "heldout-023"]


# Four of the first 60 held-out prompts share only an instruction sentence with training prompts
# ("Summarize the text above in three bullet points.", "Give me a two-sentence summary of this
# text:", ...), not their passage; they are kept because the recorded comparisons used them.
INSTRUCTION_ONLY = {"heldout-006", "heldout-021", "heldout-049", "heldout-054"}


def test_no_held_out_prompt_was_seen_in_training():
    held = rows("heldout_prompts.jsonl")
    flagged = overlaps([r["prompt"] for r in held], training_texts())
    assert {r["id"] for r in held if r["prompt"] in flagged} == INSTRUCTION_ONLY
    assert overlaps(["Why does ice float on water? Explain it."], ["why does ice float on "
                     "water explain it"]) != []  # the check does catch a copy


@pytest.mark.skipif(not SPEC_BENCH.is_file(), reason="the shared Spec-Bench file is absent")
def test_no_held_out_prompt_is_a_spec_bench_question():
    bench = [t for line in SPEC_BENCH.read_text().splitlines() if line.strip()
             for t in json.loads(line).get("turns", [])]
    held = [r["prompt"] for r in rows("heldout_prompts.jsonl")]
    assert overlaps(held, bench) == []
