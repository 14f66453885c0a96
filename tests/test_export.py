"""Exports reload with the documented names, shapes and dtypes, and give identical outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from specbench.algorithms.eagle3 import Eagle3
from specbench.algorithms.medusa import Medusa
from specbench.config import compose
from specbench.errors import UserError
from specbench.export import export_run
from specbench.target import load_target
from specbench.trainer import train

from .conftest import tiny_overrides


@pytest.fixture(scope="module")
def eagle_run(tmp_path_factory):
    from .conftest import write_conversations

    tmp = tmp_path_factory.mktemp("eagle")
    conv = write_conversations(tmp / "c.jsonl")
    over = tiny_overrides(conv, **{"algorithm": "eagle3", "algorithm.ttt_length": 2,
                                   "algorithm.draft_vocab_size": 48, "trainer.max_steps": 2})
    train(compose(over), tmp / "run")
    return tmp / "run", over


def test_eagle3_export_format_and_outputs(eagle_run):
    run, over = eagle_run
    dest = export_run(run, "sglang", dtype="float32")
    config = json.loads((dest / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLMEagle3"]
    assert config["num_hidden_layers"] == 1 and config["draft_vocab_size"] == 48
    assert config["target_hidden_size"] == 64 and config["vocab_size"] == 320
    # the default aux layers of a 4-layer target (issue 11: once [1, 1, 0]); SGLang 0.5.23
    # reads the nested ids (output of layer i), vLLM 0.33.0 the top-level ones (input of i+1)
    assert config["eagle_config"]["eagle_aux_hidden_state_layer_ids"] == [0, 1, 2]
    assert config["eagle_aux_hidden_state_layer_ids"] == [1, 2, 3]
    assert config["rope_theta"] == 500000.0 and config["hidden_size"] == 64
    assert config["torch_dtype"] == "float32"
    t = load_file(str(dest / "model.safetensors"))
    h, hd, nh, nkv, inter = 64, 16, 4, 2, 128
    expected = {
        "fc.weight": (h, 3 * h),
        "midlayer.self_attn.q_proj.weight": (nh * hd, 2 * h),
        "midlayer.self_attn.k_proj.weight": (nkv * hd, 2 * h),
        "midlayer.self_attn.v_proj.weight": (nkv * hd, 2 * h),
        "midlayer.self_attn.o_proj.weight": (h, nh * hd),
        "midlayer.mlp.gate_proj.weight": (inter, h), "midlayer.mlp.up_proj.weight": (inter, h),
        "midlayer.mlp.down_proj.weight": (h, inter),
        "midlayer.input_layernorm.weight": (h,), "midlayer.hidden_norm.weight": (h,),
        "midlayer.post_attention_layernorm.weight": (h,), "norm.weight": (h,),
        "lm_head.weight": (48, h), "d2t": (48,), "t2d": (320,),
    }
    assert {k: tuple(v.shape) for k, v in t.items()} == expected
    assert t["d2t"].dtype == torch.int64 and t["t2d"].dtype == torch.bool
    assert t["fc.weight"].dtype == torch.float32
    assert int(t["t2d"].sum()) == 48
    assert torch.equal(torch.arange(48) + t["d2t"], t["t2d"].nonzero().flatten())
    # reload into a fresh draft: identical outputs
    cfg = compose(over)
    target = load_target(cfg.model)
    fresh = Eagle3(cfg.algorithm, target.config, target.embed_tokens.weight,
                   target.lm_head.weight, torch.arange(48))
    fresh.load_trainable_state_dict(t)
    trained = Eagle3(cfg.algorithm, target.config, target.embed_tokens.weight,
                     target.lm_head.weight, torch.arange(48))
    trained.load_trainable_state_dict(load_file(str(run / "draft.safetensors")))
    ids = torch.randint(0, 256, (1, 9))
    aux = [torch.randn(1, 9, 64) for _ in range(3)]
    a = fresh.draft_logits(fresh.ttt_forward(aux, ids)[-1])
    b = trained.draft_logits(trained.ttt_forward(aux, ids)[-1])
    assert torch.equal(a, b)
    bf16 = export_run(run, "vllm")  # default dtype bf16
    assert load_file(str(bf16 / "model.safetensors"))["fc.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize("lm_head", ["per_head", "shared"])
def test_medusa_vllm_export(tmp_path, conv_file, lm_head):
    over = tiny_overrides(conv_file, **{"algorithm.lm_head": lm_head, "algorithm.num_heads": 3,
                                        "trainer.max_steps": 2})
    train(compose(over), tmp_path / "run")
    dest = export_run(tmp_path / "run", "vllm", dtype="float32")
    config = json.loads((dest / "config.json").read_text())
    assert config == {"model_type": "medusa", "architectures": ["MedusaModel"],
                      "hidden_size": 64, "vocab_size": 320, "truncated_vocab_size": 320,
                      "num_heads": 3, "num_hidden_layers": 1, "medusa_fc_bias": True,
                      "original_lm_head": lm_head == "shared", "torch_dtype": "float32"}
    t = load_file(str(dest / "model.safetensors"))
    blocks = {f"blocks.{i}.layers.0.{p}": ((64, 64) if p == "weight" else (64,))
              for i in range(3) for p in ("weight", "bias")}
    heads = {f"lm_heads.{i}.weight": (320, 64) for i in (range(3) if lm_head == "per_head" else [0])}
    assert {k: tuple(v.shape) for k, v in t.items()} == {**blocks, **heads}
    cfg = compose(over)
    target = load_target(cfg.model)
    if lm_head == "shared":
        assert torch.equal(t["lm_heads.0.weight"], target.lm_head.weight)
    fresh = Medusa(cfg.algorithm, 64, 320, t["lm_heads.0.weight"])
    fresh.load_trainable_state_dict({k: v for k, v in t.items()
                                     if lm_head == "per_head" or k.startswith("blocks.")})
    trained = Medusa(cfg.algorithm, 64, 320, target.lm_head.weight)
    trained.load_trainable_state_dict(load_file(str(tmp_path / "run" / "draft.safetensors")))
    h = torch.randn(5, 64)
    for k in range(3):
        assert torch.equal(fresh.head_logits(k, h), trained.head_logits(k, h))


def test_export_errors(tmp_path, conv_file):
    with pytest.raises(UserError, match="not a specbench run directory"):
        export_run(tmp_path, "vllm")
    over = tiny_overrides(conv_file, **{"trainer.max_steps": 2})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(
        OmegaConf.to_container(compose(over), resolve=True, enum_to_str=True)))
    with pytest.raises(UserError, match="no trained draft"):
        export_run(tmp_path / "r", "vllm")
    train(compose(over), tmp_path / "run")
    with pytest.raises(UserError, match="SGLang has no Medusa"):
        export_run(tmp_path / "run", "sglang")
    with pytest.raises(UserError, match="Unknown export format 'onnx'"):
        export_run(tmp_path / "run", "onnx")
    export_run(tmp_path / "run", "vllm")
    with pytest.raises(UserError, match="already exists; pass --force"):
        export_run(tmp_path / "run", "vllm")
    export_run(tmp_path / "run", "vllm", force=True)
    proc = subprocess.run([sys.executable, "-m", "specbench.export", str(tmp_path / "run"),
                           "--format", "onnx"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'onnx'" in proc.stderr


def test_export_at_end_of_a_cli_run(tmp_path, conv_file):
    from pathlib import Path

    run = tmp_path / "run"
    args = tiny_overrides(conv_file, **{"trainer.max_steps": 1, "algorithm": "eagle3",
                                        "algorithm.ttt_length": 2,
                                        "algorithm.draft_vocab_size": 32})
    proc = subprocess.run([sys.executable, "-m", "specbench", *args, "export=[sglang,vllm]",
                           f"hydra.run.dir={run}"], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for fmt in ("sglang", "vllm"):
        assert f"exported {run}/export-{fmt}" in proc.stdout
        assert "--speculative-config" in (run / f"export-{fmt}" / "SERVING.md").read_text()
        cfg = json.loads((run / f"export-{fmt}" / "config.json").read_text())
        assert cfg["draft_vocab_size"] == 32
