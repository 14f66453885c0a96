"""The large prompt bank (specbench.data.prompt_bank): deterministic, big, balanced, with
distinct prompts, and sharing no 8 consecutive words with the held-out prompts or Spec-Bench."""

from __future__ import annotations

import collections
import json
import re

import pytest

from specbench.data import prompt_bank
from specbench.data.conversations import embedded_path
from tests.test_heldout_prompts import SPEC_BENCH, grams, normalised, rows

BASE_CATEGORIES = {"reasoning", "writing", "everyday", "coding", "math", "stem",
                   "summarization", "roleplay", "humanities", "extraction"}


@pytest.fixture(scope="module")
def bank() -> list[dict]:
    return prompt_bank.build_prompts(0, prompt_bank.default_exclude())


def overlapping(bank: list[dict], others: list[str]) -> list[str]:
    seen_text = {normalised(t) for t in others}
    seen_grams = set().union(*(grams(t) for t in others))
    return [t for r in bank for t in r["turns"] if normalised(t) in seen_text
            or grams(t) & seen_grams]


def test_the_build_is_deterministic(bank):
    assert prompt_bank.build_prompts(0, prompt_bank.default_exclude()) == bank
    assert prompt_bank.build_prompts(1)[:50] != prompt_bank.build_prompts(0)[:50]


def test_size_shape_and_balance(bank):
    assert len(bank) >= 4000
    assert [r["id"] for r in bank] == [f"large-{i:05d}" for i in range(1, len(bank) + 1)]
    for r in bank:
        assert set(r) == {"id", "category", "turns", "long"} and isinstance(r["long"], bool)
        assert 1 <= len(r["turns"]) <= 2 and all(t.strip() for t in r["turns"])
        assert all("{" not in t or "```" in t for t in r["turns"])  # every slot filled
    cats = collections.Counter(r["category"] for r in bank)
    assert len(cats) >= 11 and BASE_CATEGORIES <= set(cats) and min(cats.values()) >= 250
    assert sum(len(r["turns"]) == 2 for r in bank) >= 0.2 * len(bank)
    assert sum(r["long"] for r in bank) >= 0.1 * len(bank)


def test_long_passages_are_150_to_400_words(bank):
    pb = prompt_bank
    instructions = set(pb.SUM_INSTRUCTIONS + pb.SUM_INSTRUCTIONS_AFTER + pb.SUM_INSTRUCTIONS_LONG
                       + pb.SUM_INSTRUCTIONS_LONG_AFTER + pb.EXT_INSTRUCTIONS
                       + pb.EXT_INSTRUCTIONS_AFTER + pb.EXT_INSTRUCTIONS_LONG
                       + pb.EXT_INSTRUCTIONS_LONG_AFTER)
    n_long = 0
    for r in bank:
        parts = r["turns"][0].split("\n\n")
        if r["category"] in ("summarization", "extraction") and len(parts) > 1:
            instruction = parts[0] if parts[0] in instructions else parts[-1]
            assert instruction in instructions
            n = len(r["turns"][0].split()) - len(instruction.split())
            assert (150 <= n <= 400) if r["long"] else n < 150, r["turns"][0]
            n_long += r["long"]
    assert n_long >= 200


def test_first_turns_are_distinct(bank):
    firsts = [normalised(r["turns"][0]) for r in bank]
    assert len(set(firsts)) == len(firsts)
    # the module's own normalisation agrees with the held-out test's
    assert all(prompt_bank.normalised(r["turns"][0]) == n for r, n in zip(bank[:200], firsts))


def test_no_turn_shares_8_words_with_a_held_out_prompt(bank):
    held = [r["prompt"] for r in rows("heldout_prompts.jsonl")]
    assert overlapping(bank, held) == []


@pytest.mark.skipif(not SPEC_BENCH.is_file(), reason="the shared Spec-Bench file is absent")
def test_no_turn_shares_8_words_with_a_spec_bench_question(bank):
    bench = [t for line in SPEC_BENCH.read_text().splitlines() if line.strip()
             for t in json.loads(line).get("turns", [])]
    assert overlapping(bank, bench) == []


def test_the_filter_drops_rows_that_overlap_exclude():
    first = prompt_bank.build_prompts(0)[:3]
    copy = "some words " + first[1]["turns"][0] + " more"
    kept = prompt_bank.build_prompts(0, [copy])
    assert [r["turns"] for r in kept[:2]] == [first[0]["turns"], first[2]["turns"]]
    assert kept[1]["id"] == "large-00002"


@pytest.mark.skipif(not SPEC_BENCH.is_file(), reason="the Spec-Bench file changes the filter")
def test_the_committed_file_is_the_build(bank):
    lines = embedded_path("prompts-large.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == bank


def test_no_algorithm_names_in_the_module():
    text = open(prompt_bank.__file__, encoding="utf-8").read().lower()
    assert not re.search("medusa|eagle|hydra|dflash", text)
