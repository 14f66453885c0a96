"""Issue 10: ``export --force`` replaces only an earlier export, never a folder of other files,
the run directory, a parent of it or a file; damaged runs give messages naming the file; the
target is loaded with the run's seed and never with trust_remote_code taken from the run;
unsupported ``export=[...]`` formats are refused before training."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from specbench.config import compose
from specbench.errors import UserError
from specbench.export import MARKER, check_export_settings, export_run, main

from .conftest import tiny_overrides


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from specbench.trainer import train

    from .conftest import write_conversations

    tmp = tmp_path_factory.mktemp("safe-export")
    conv = write_conversations(tmp / "c.jsonl")
    over = tiny_overrides(conv, **{"trainer.max_steps": 1, "trainer.seed": 3,
                                   "algorithm.lm_head": "shared", "decode.enabled": "false"})
    train(compose(over), tmp / "run")
    return tmp / "run", over


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run (hard links kept, as the trainer makes them)."""
    src, _ = trained
    dst = tmp_path / "run"
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    ckpt = sorted((dst / "checkpoints").glob("step-*"))[-1]
    (dst / "draft.safetensors").unlink()
    os.link(ckpt / "draft.safetensors", dst / "draft.safetensors")
    return dst


def _snapshot(path):
    return sorted((str(p.relative_to(path)), p.read_bytes() if p.is_file() else None)
                  for p in path.rglob("*"))


def test_force_never_replaces_a_parent_folder_of_other_files(run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    for out in (tmp_path, run, run / "checkpoints"):
        with pytest.raises(UserError) as err:
            export_run(run, "vllm", out=out, force=True)
        assert str(out) in str(err.value)
    assert _snapshot(tmp_path) == before


def test_force_never_replaces_a_file(run):
    summary = run / "summary.json"
    before = summary.read_bytes()
    with pytest.raises(UserError, match="is a file"):
        export_run(run, "vllm", out=summary, force=True)
    assert summary.is_file() and summary.read_bytes() == before


def test_force_replaces_only_an_earlier_export(run, tmp_path):
    dest = export_run(run, "vllm", out=tmp_path / "exp")
    assert (dest / MARKER).is_file()
    assert export_run(run, "vllm", out=dest, force=True) == dest
    handmade = tmp_path / "handmade"
    handmade.mkdir()
    (handmade / "model.safetensors").write_text("someone else's")
    with pytest.raises(UserError, match="not written by specbench"):
        export_run(run, "vllm", out=handmade, force=True)
    assert (handmade / "model.safetensors").read_text() == "someone else's"
    ckpt = sorted((run / "checkpoints").glob("step-*"))[-1]  # marked, but as a checkpoint
    with pytest.raises(UserError, match=f"no {MARKER} file"):
        export_run(run, "vllm", out=ckpt, force=True)
    assert (ckpt / "trainer_state.pt").is_file()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


def test_cli_force_on_the_run_dir_is_refused(run, capsys):
    before = _snapshot(run)
    assert main([str(run), "--format", "vllm", "--out", str(run), "--force"]) == 2
    assert "never replaces it" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_flipped_weights_are_refused(run):
    with open(run / "draft.safetensors", "r+b") as f:  # the checkpoint's file too (hard link)
        f.seek(-2, os.SEEK_END)
        f.write(b"\x7f\x7f")
    with pytest.raises(UserError) as err:
        export_run(run, "vllm")
    assert "draft.safetensors does not match the sha256" in str(err.value)
    assert not (run / "export-vllm").exists()


@pytest.mark.parametrize("content,expect", [
    (b"", "not valid JSON"), (b"\x89PNG\x00\x01", "not text"), (b"null", "not an object"),
    (b'{"model": {}}', "lacks the model and algorithm sections"),
])
def test_corrupt_config_json_names_the_file(run, content, expect):
    (run / "config.json").write_bytes(content)
    with pytest.raises(UserError) as err:
        export_run(run, "vllm")
    assert str(run / "config.json") in str(err.value) and expect in str(err.value)


def test_truncated_weights_of_an_old_run_name_the_file(run):
    for state in (run / "checkpoints").glob("step-*/state.json"):  # as before checksums
        data = json.loads(state.read_text())
        data.pop("sha256"), data.pop("state_sha256")
        state.write_text(json.dumps(data))
    (run / "draft.safetensors").unlink()
    (run / "draft.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(UserError, match="draft.safetensors cannot be read as safetensors"):
        export_run(run, "vllm")


def test_shared_lm_head_comes_from_the_target_of_the_runs_seed(run, trained):
    from specbench.target import load_target

    _, over = trained
    dest = export_run(run, "vllm", dtype="float32")
    head = load_file(str(dest / "model.safetensors"))["lm_heads.0.weight"]
    cfg = compose(over)
    assert torch.equal(head, load_target(cfg.model, seed=3).lm_head.weight)
    assert not torch.equal(head, load_target(cfg.model, seed=0).lm_head.weight)


def test_trust_remote_code_is_never_taken_from_the_run(run, monkeypatch):
    import specbench.target

    config = json.loads((run / "config.json").read_text())
    config["model"]["trust_remote_code"] = True
    (run / "config.json").write_text(json.dumps(config))
    seen = []
    real = specbench.target.load_target

    def spy(model_cfg, *a, **k):
        seen.append(bool(model_cfg.trust_remote_code))
        return real(model_cfg, *a, **k)

    monkeypatch.setattr(specbench.target, "load_target", spy)
    with pytest.raises(UserError, match="--trust-remote-code"):
        export_run(run, "vllm")
    assert seen == []  # refused before any model code could load
    export_run(run, "vllm", trust_remote_code=True)
    assert seen == [True]


@pytest.mark.parametrize("algorithm,formats,message", [
    ("medusa", "[onnx]", "Unknown export format 'onnx'"),
    ("medusa", "[sglang]", "SGLang has no Medusa"),
    ("eagle3", "[vllm,onnx]", r"export=\[onnx\]"),
])
def test_export_settings_are_checked_before_training(conv_file, algorithm, formats, message):
    cfg = compose(tiny_overrides(conv_file, algorithm=algorithm) + [f"export={formats}"])
    with pytest.raises(UserError, match=message):
        check_export_settings(cfg)


def test_supported_export_settings_pass(conv_file):
    check_export_settings(compose(tiny_overrides(conv_file) + ["export=[vllm]"]))
    check_export_settings(compose(tiny_overrides(conv_file, algorithm="eagle3")
                                  + ["export=[sglang,vllm]"]))
    check_export_settings(compose(tiny_overrides(conv_file)))


def test_an_unfinished_run_is_exported_only_with_allow_unfinished(tmp_path, conv_file, capsys):
    """Issue 10: a run stopped at step 1 of 2 was exported from its checkpoint, saying only
    'exported ...'. Now refused, naming the step and --allow-unfinished, which exports it with a
    warning."""
    from specbench.trainer import train

    over = tiny_overrides(conv_file, **{"trainer.max_steps": 2, "decode.enabled": "false"})
    run = tmp_path / "run"
    train(compose(over), run, stop_after_steps=1)
    with pytest.raises(UserError, match=r"did not finish.*step-0000001 \(step 1 of 2\).*"
                                        r"--allow-unfinished"):
        export_run(run, "vllm")
    assert not (run / "export-vllm").exists()
    assert main([str(run), "--format", "vllm"]) == 2
    assert "--allow-unfinished" in capsys.readouterr().err
    assert main([str(run), "--format", "vllm", "--allow-unfinished"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "unfinished" in err and "step 1 of 2" in err
    assert (run / "export-vllm" / "model.safetensors").is_file()
