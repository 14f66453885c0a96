"""``python -m specbench.bench --verify --json PATH``: the verify-forward table against the
weight-read floor, written for every q, on a tiny random target."""

from __future__ import annotations

import json

import pytest
import torch

from specbench.bench import VERIFY_SIZES, main, memory_bandwidth, weight_bytes


def test_verify_json_has_every_size_and_the_floor(tmp_path, capsys):
    out = tmp_path / "sub" / "verify.json"
    assert main(["--verify", "--json", str(out), "model=tiny-llama"]) == 0
    table = json.loads(out.read_text())
    assert [r["q"] for r in table["rows"]] == list(VERIFY_SIZES) == [1, 2, 4, 8, 16, 32, 64]
    assert table["rows"][0]["ratio_to_q1"] == 1.0
    for r in table["rows"]:
        assert r["dtype"] == "float32" and r["time_ms"] > 0
        assert r["floor_over_time"] == pytest.approx(table["floor_ms"] / r["time_ms"])
    assert table["floor_ms"] == pytest.approx(
        1000 * table["weight_bytes"] / table["bandwidth_bytes_per_s"])
    printed = capsys.readouterr().out
    assert "weight-read floor" in printed and "floor/t" in printed


def test_weight_bytes_count_a_tied_matrix_once():
    tied = torch.nn.Module()
    tied.a = torch.nn.Linear(4, 3, bias=False)
    tied.b = torch.nn.Linear(4, 3, bias=False)
    tied.b.weight = tied.a.weight
    assert weight_bytes(tied) == 4 * 3 * 4
    assert memory_bandwidth(nbytes=1 << 20, reps=2) > 1e8  # any machine moves 100 MB/s


def test_json_needs_a_path(capsys):
    assert main(["--verify", "--json"]) == 2
    assert "--json needs a file path" in capsys.readouterr().err


def test_verify_modes_side_by_side(tmp_path, capsys):
    out = tmp_path / "modes.json"
    assert main(["--verify", "--verify-mode=dynamic,static", "--json", str(out),
                 "model=tiny-llama"]) == 0
    table = json.loads(out.read_text())
    assert table["modes"] == ["dynamic", "static"]
    assert [(r["mode"], r["q"]) for r in table["rows"]] == \
        [(m, q) for m in ("dynamic", "static") for q in VERIFY_SIZES]
    assert all(r["ratio_to_q1"] == 1.0 for r in table["rows"] if r["q"] == 1)
    assert table["draft_step_ms"] == {"algorithm": "medusa"}  # no draft KV cache to time
    assert "algorithm=eagle3 also times" in capsys.readouterr().out
    assert main(["--verify", "--verify-mode=dynamic,static", "--json", str(out),
                 "model=tiny-llama", "algorithm=eagle3", "algorithm.draft_vocab_size=64"]) == 0
    draft = json.loads(out.read_text())["draft_step_ms"]
    assert draft["algorithm"] == "eagle3" and set(draft) == {"algorithm", "dynamic", "static"}
    assert all(0 < draft[m] < 1000 for m in ("dynamic", "static"))
    assert "static eagle3 draft step (one chain token, 256 cached)" in capsys.readouterr().out
    assert main(["--verify", "--verify-mode=static,fast"]) == 2
    assert "'fast' is not a verify mode" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--verify", "--verify-mode=graphs", "model=tiny-llama"]) == 2
        assert "needs a GPU" in capsys.readouterr().err
