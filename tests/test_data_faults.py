"""Data faults: settings that leave nothing to train, corrupt or truncated data files, and what
the console says about skipped and held-out rows."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from specbench.config import DataConfig
from specbench.data import build_dataset
from specbench.data.conversations import load_conversations
from specbench.errors import UserError
from specbench.target import byte_level_tokenizer

from .conftest import write_conversations

GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _cfg(path, **kw):
    """A data config set field by field after construction, as a caller of build_dataset may
    (DataConfig's own checks run only at construction; build_dataset checks again)."""
    cfg = OmegaConf.structured(DataConfig(name="t", path=str(path)))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _load(tmp_path, name, data: bytes, **kw):
    p = tmp_path / name
    p.write_bytes(data)
    return p, load_conversations(_cfg(p, **kw))


def test_max_rows_zero_names_max_rows(conv_file):
    for bad in (0, -3):
        with pytest.raises(UserError, match=rf"data.max_rows={bad} must be at least 1") as err:
            build_dataset(_cfg(conv_file, max_rows=bad), byte_level_tokenizer("llama"), 128)
        assert "eval_rows" not in str(err.value)


def test_negative_eval_rows(conv_file):
    with pytest.raises(UserError, match=r"data.eval_rows=-1 must be 0 or more"):
        build_dataset(_cfg(conv_file, eval_rows=-1), byte_level_tokenizer("llama"), 128)


def test_eval_rows_taking_every_row_mentions_max_rows(conv_file):
    with pytest.raises(UserError, match=r"data.eval_rows=8 leaves no training rows out of the 8 "
                                        r".*data.max_rows=8 limits.*raise data.max_rows"):
        build_dataset(_cfg(conv_file, max_rows=8, eval_rows=8), byte_level_tokenizer("llama"),
                      128)


def test_no_row_fits_max_length_is_refused(conv_file):
    # The byte-level template puts ~40 tokens of header before the first answer token.
    with pytest.raises(UserError) as err:
        build_dataset(_cfg(conv_file, eval_rows=8), byte_level_tokenizer("llama"), 10)
    text = str(err.value)
    assert "No training row remains" in text and "trainer.max_length=10" in text
    assert "of the 48 usable conversations" in text
    assert "data.eval_rows=8 are held out and the other 40 have no assistant token" in text


def test_console_reports_bad_rows_cut_rows_and_a_large_held_out_split(tmp_path, capsys):
    p = write_conversations(tmp_path / "c.jsonl", n=20)
    with open(p, "a") as f:
        f.write("{broken\n")
        f.write(json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    data = build_dataset(_cfg(p, eval_rows=16), byte_level_tokenizer("llama"), 128)
    assert len(data.train) == 4
    out = capsys.readouterr().out
    assert "2 bad row(s) skipped" in out and "(lines 21, 22;" in out
    assert "summary.json" in out
    assert "warning: data.eval_rows=16 holds 16 of 20 rows (80%) out of training" in out
    build_dataset(_cfg(p, eval_rows=16), byte_level_tokenizer("llama"), 128, verbose=False,
                  progress=False)
    assert capsys.readouterr().out == ""
    build_dataset(_cfg(p, eval_rows=2), byte_level_tokenizer("llama"), 56)
    out = capsys.readouterr().out
    assert "7 row(s) skipped: no assistant token within trainer.max_length=56" in out
    assert "warning" not in out


def test_binary_files_are_refused_once_naming_the_file(tmp_path):
    for name in ("blob.jsonl", "blob.json"):
        with pytest.raises(UserError, match=rf"data.path='.*{name}' looks like a binary file.*"
                                            r"line 3"):
            _load(tmp_path, name, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_json_null_number_and_empty_files(tmp_path):
    with pytest.raises(UserError, match=r"null.json' holds null, not conversations"):
        _load(tmp_path, "null.json", b"null\n")
    with pytest.raises(UserError, match=r"n.json' holds a JSON int"):
        _load(tmp_path, "n.json", b"42")
    with pytest.raises(UserError, match=r"empty.json' is empty"):
        _load(tmp_path, "empty.json", b"  \n")
    with pytest.raises(UserError, match=r"empty.jsonl holds no conversations \(it is empty\)"):
        _load(tmp_path, "empty.jsonl", b"")
    with pytest.raises(UserError, match=r"all 2 rows are bad, the first at line 1: row is null, "
                                        r"not a JSON object"):
        _load(tmp_path, "nulls.jsonl", b"null\n[1, 2]\n")


def test_json_array_rows_carry_their_line_numbers(tmp_path):
    text = json.dumps([GOOD, GOOD, 5, GOOD], indent=2)
    line_of_5 = text.splitlines().index("  5,") + 1
    _, res = _load(tmp_path, "arr.json", text.encode())
    assert len(res.rows) == 3
    assert res.bad_rows == [{"line": line_of_5, "reason": "row is a number, not a JSON object"}]
    _, one = _load(tmp_path, "one.json", json.dumps(GOOD).encode())
    _, lines = _load(tmp_path, "lines.json", ((json.dumps(GOOD) + "\n") * 3).encode())
    assert len(one.rows) == 1 and len(lines.rows) == 3


def test_cut_off_files_name_the_line(tmp_path):
    text = json.dumps([GOOD, GOOD], indent=2)
    lines = text.count("\n")
    with pytest.raises(UserError, match=rf"cut.json' is cut off or corrupt at line {lines + 1}: "
                                        r"the file ends inside the array"):
        _load(tmp_path, "cut.json", text[:-1].encode())
    with pytest.raises(UserError, match=r"cut2.json' is cut off or corrupt at line \d+ column"):
        _load(tmp_path, "cut2.json", text[:-30].encode())
    cut = (json.dumps(GOOD) + "\n" + json.dumps(GOOD))[:-5]
    _, res = _load(tmp_path, "cut.jsonl", cut.encode())
    assert res.bad_rows[0]["line"] == 2 and "looks cut off" in res.bad_rows[0]["reason"]
    with pytest.raises(UserError, match=r"line 2 of .*cut.jsonl.*looks cut off"):
        _load(tmp_path, "cut.jsonl", cut.encode(), bad_rows="error")
