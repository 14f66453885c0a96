"""Data: normalisation, bad rows, assistant-only loss masks on three chat-template styles."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from specbench.config import DataConfig
from specbench.data import build_dataset, collate, epoch_order
from specbench.data.conversations import embedded_path, load_conversations, normalise
from specbench.data.tokenization import tokenize_conversation
from specbench.errors import UserError
from specbench.target import byte_level_tokenizer

SMOLLM2_TEMPLATE = (  # as shipped with SmolLM2-135M-Instruct (ChatML with a default system)
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]


def tokenizers():
    smol = byte_level_tokenizer("qwen2")
    smol.chat_template = SMOLLM2_TEMPLATE
    return {"smollm2": (smol, "<|im_end|>"), "llama3": (byte_level_tokenizer("llama"), "<|eot_id|>"),
            "qwen2.5": (byte_level_tokenizer("qwen2"), "<|im_end|>")}


def masked_segments(tok, row):
    segs, cur = [], []
    for t, m in zip(row.input_ids, row.loss_mask):
        if m:
            cur.append(t)
        elif cur:
            segs.append(tok.decode(cur))
            cur = []
    if cur:
        segs.append(tok.decode(cur))
    return segs


@pytest.mark.parametrize("style", ["smollm2", "llama3", "qwen2.5"])
def test_loss_mask_covers_assistant_turns_only(style):
    tok, eot = tokenizers()[style]
    row = tokenize_conversation(tok, CONV, max_length=10_000)
    assert masked_segments(tok, row) == [f"Hello! How can I help?{eot}", f"Blue.{eot}"]
    text = tok.decode(row.input_ids)
    assert text == tok.apply_chat_template(CONV, tokenize=False)


def test_loss_mask_on_the_real_smollm2_tokenizer():
    from transformers import AutoTokenizer

    from specbench.embedded import ensure_embedded_model

    tok = AutoTokenizer.from_pretrained(ensure_embedded_model(verbose=False))
    row = tokenize_conversation(tok, CONV[1:], max_length=10_000)
    assert masked_segments(tok, row) == ["Hello! How can I help?<|im_end|>", "Blue.<|im_end|>"]
    assert "You are a helpful AI assistant named SmolLM" in tok.decode(row.input_ids)


def test_truncation_keeps_mask_aligned():
    tok, _ = tokenizers()["qwen2.5"]
    full = tokenize_conversation(tok, CONV, max_length=10_000)
    cut = tokenize_conversation(tok, CONV, max_length=70)
    assert cut.input_ids == full.input_ids[:70] and cut.loss_mask == full.loss_mask[:70]


def test_sharegpt_form_is_normalised():
    row = {"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}
    assert normalise(row) == [{"role": "user", "content": "Q?"},
                              {"role": "assistant", "content": "A."}]


BAD_LINES = [
    json.dumps({"messages": [{"role": "user", "content": "ok"},
                             {"role": "assistant", "content": "fine"}]}),
    json.dumps({"messages": [{"content": "no role"}]}),                         # line 2
    json.dumps({"messages": [{"role": "user", "content": "q"},
                             {"role": "assistant", "content": "   "}]}),        # line 3
    "{not json",                                                                 # line 4
    json.dumps({"conversations": [{"from": "gpt", "value": "first"},
                                  {"from": "human", "value": "q"}]}),            # line 5
    json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # line 6
]


def _bad_file(tmp_path):
    p = tmp_path / "bad.jsonl"
    with open(p, "wb") as f:
        f.write(("\n".join(BAD_LINES) + "\n").encode())
        f.write(b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}\n')  # line 7
    return p


def test_bad_rows_are_counted_with_line_numbers(tmp_path):
    cfg = OmegaConf.structured(DataConfig(name="t", path=str(_bad_file(tmp_path))))
    res = load_conversations(cfg)
    assert len(res.rows) == 1 and res.rows_read == 7
    lines = {b["line"]: b["reason"] for b in res.bad_rows}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7]
    assert "lacks 'role'" in lines[2] and "empty content" in lines[3]
    assert "invalid JSON" in lines[4] and "not from the user" in lines[5]
    assert "no assistant turn" in lines[6] and "undecodable" in lines[7]


def test_bad_rows_error_mode_names_the_line(tmp_path):
    cfg = OmegaConf.structured(DataConfig(name="t", path=str(_bad_file(tmp_path)),
                                          bad_rows="error"))
    with pytest.raises(UserError, match=r"line 2 of .*bad.jsonl.*data.bad_rows=report"):
        load_conversations(cfg)


def test_missing_file_is_a_clear_error(tmp_path):
    cfg = OmegaConf.structured(DataConfig(name="jsonl", path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(UserError, match="data.path=.*does not exist"):
        load_conversations(cfg)


def test_embedded_dataset_and_heldout_prompts():
    cfg = OmegaConf.structured(DataConfig(name="embedded-chat", path="embedded", eval_rows=16))
    convs = load_conversations(cfg)
    assert len(convs.rows) == 320 and not convs.bad_rows
    train_prompts = {c[0]["content"] for c in convs.rows}
    heldout = [json.loads(x) for x in embedded_path("heldout_prompts.jsonl").read_text().splitlines()]
    assert len(heldout) == 110
    assert not train_prompts & {h["prompt"] for h in heldout}  # never trained on
    meta = json.loads(embedded_path("chat.generation.json").read_text())
    assert meta["model"] == "smollm2-135m" and meta["decoding"] == "greedy"
    assert meta["rows"] == 320


def test_split_is_content_based_and_order_is_seeded(conv_file):
    tok = byte_level_tokenizer("llama")
    cfg = OmegaConf.structured(DataConfig(name="t", path=str(conv_file), eval_rows=8))
    a = build_dataset(cfg, tok, 128)
    b = build_dataset(cfg, tok, 128)
    assert len(a.eval) == 8 and len(a.train) == 40
    assert [r.input_ids for r in a.eval] == [r.input_ids for r in b.eval]
    assert epoch_order(40, 0, 0) == epoch_order(40, 0, 0) != epoch_order(40, 0, 1)
    assert epoch_order(40, 1, 0) != epoch_order(40, 0, 0)
    assert sorted(epoch_order(40, 3, 2)) == list(range(40))
    stats = a.stats()
    assert stats["rows"] == 48 and len(stats["sha256"]) == 64
    batch = collate(a.train[:3], pad_id=256)
    lengths = [len(r.input_ids) for r in a.train[:3]]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert int(batch["loss_mask"][batch["attention_mask"] == 0].sum()) == 0
