"""Issue 13: DFlash exports checked against the loading rules of the engines that serve them, as
read in their released code (the wheels on PyPI, not installed here):

- vLLM 0.33.0: vllm/model_executor/models/registry.py (``_SPECULATIVE_DECODING_MODELS``:
  ``DFlashDraftModel``), vllm/transformers_utils/configs/eagle.py (``EAGLEConfig`` renames any
  other draft architecture to ``DFlash<arch>``), vllm/model_executor/models/qwen3_dflash.py
  (``DFlashQwen3ForCausalLM.load_weights`` prepends ``model.`` and refuses unknown names),
  vllm/v1/spec_decode/llm_base_proposer.py (``_init_parallel_drafting_params``: the mask id),
  vllm/model_executor/models/eagle3_utils.py (``dflash_config.target_layer_ids`` + 1);
- SGLang 0.5.23: sglang/srt/models/dflash.py (``DFlashDraftModel.__init__`` sizes ``fc`` as
  layers x hidden_size, ``load_weights`` drops unknown names silently) and
  sglang/srt/speculative/dflash_utils.py (``parse_dflash_draft_config``: block size, mask token,
  RoPE default 10000), sglang/srt/models/qwen3.py / llama.py (``set_dflash_layers_to_capture``:
  id k is captured before layer k + 1, so never the last layer).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from specbench.config import compose
from specbench.export import export_run
from specbench.trainer import train

from .conftest import tiny_overrides

TARGET = {"vocab": 320, "layers": 4, "hidden": 64}  # tiny-llama
LAYER = ("input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
         "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm", "self_attn.k_norm",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def expected_shapes(c: dict) -> dict[str, tuple]:
    """The parameter shapes DFlashQwen3ForCausalLM (vLLM) / DFlashDraftModel (SGLang) build
    from ``config.json`` (bare names, before q/k/v and gate/up are stacked)."""
    h, d, i = c["hidden_size"], c["head_dim"], c["intermediate_size"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    k = len(c["dflash_config"]["target_layer_ids"])
    per = {"input_layernorm": (h,), "post_attention_layernorm": (h,),
           "self_attn.q_proj": (q, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
           "self_attn.o_proj": (h, q), "self_attn.q_norm": (d,), "self_attn.k_norm": (d,),
           "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}
    shapes = {"fc.weight": (h, k * c.get("target_hidden_size", h)), "hidden_norm.weight": (h,),
              "norm.weight": (h,)}
    for n in range(c["num_hidden_layers"]):
        shapes.update({f"layers.{n}.{p}.weight": s for p, s in per.items()})
    return shapes


def vllm_0_33_problems(c: dict, tensors: dict, target=TARGET) -> list[str]:
    problems = []
    if c.get("architectures") != ["DFlashDraftModel"]:
        problems.append(f"architectures {c.get('architectures')}: renamed to DFlash<arch>, "
                        "which the registry lacks")
    dc = c.get("dflash_config") or {}
    mid = dc.get("mask_token_id", c.get("mask_token_id"))
    if mid is None or not 0 <= mid < target["vocab"]:
        problems.append(f"mask_token_id {mid}: required, below the target vocabulary")
    ids = dc.get("target_layer_ids")
    if "eagle_aux_hidden_state_layer_ids" in c and (
            ids is None or c["eagle_aux_hidden_state_layer_ids"] != [i + 1 for i in ids]):
        problems.append("eagle_aux_hidden_state_layer_ids takes priority over target_layer_ids")
    if ids is None:
        problems.append("no target_layer_ids: the target's EAGLE-3 default layers are used")
    elif ids != sorted(set(ids)) or not all(0 <= i < target["layers"] for i in ids):
        problems.append(f"target_layer_ids {ids}: captured in layer order, each once")
    if c.get("is_causal") or dc.get("causal") or "sliding_attention" in (c.get("layer_types")
                                                                          or []):
        problems.append("a causal draft layer: the block was trained non-causally")
    shapes = expected_shapes(c)
    optional = {"embed_tokens.weight", "lm_head.weight", "d2t"}
    for name, t in tensors.items():
        if name.startswith("model.") or "mask_hidden" in name:
            problems.append(f"There is no module or parameter named 'model.{name}'")
        elif name not in shapes and name not in optional:
            problems.append(f"There is no module or parameter named {name!r}")
        elif name in shapes and tuple(t.shape) != shapes[name]:
            problems.append(f"{name}: shape {tuple(t.shape)}, the loader builds {shapes[name]}")
    problems += [f"{n} missing: left at its initialisation" for n in set(shapes) - set(tensors)]
    return problems


def sglang_0_5_23_problems(c: dict, tensors: dict, target=TARGET, tokenizer=None) -> list[str]:
    problems = []
    if c.get("architectures", [None])[0] not in ("DFlashDraftModel", "DFlashLagunaForCausalLM"):
        problems.append(f"architectures {c.get('architectures')}: not an SGLang DFlash class")
    if c["hidden_size"] != target["hidden"]:
        problems.append("DFLASH fc.weight shape mismatch: fc reads layers x the draft's hidden")
    dc = c.get("dflash_config") or {}
    ids = dc.get("target_layer_ids", c.get("target_layer_ids"))
    if ids is None or not all(0 <= i <= target["layers"] - 2 for i in ids):
        problems.append(f"target_layer_ids {ids}: the last layer is never captured")
    mid = dc.get("mask_token_id", c.get("mask_token_id"))
    if mid is None or not 0 <= mid < target["vocab"]:
        problems.append(f"mask_token_id {mid}: must lie in the target's embedding")
    token = dc.get("mask_token", c.get("mask_token"))
    if tokenizer is not None and token is not None and \
            tokenizer.convert_tokens_to_ids(token) not in (mid, tokenizer.unk_token_id):
        problems.append(f"mask_token {token!r} is another id in the tokenizer")
    if "block_size" not in dc and "block_size" not in c:
        problems.append("no block_size: 16 assumed")
    rope = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", 10000.0))
    if rope != target.get("rope_theta", rope):
        problems.append(f"rope theta {rope}: not the target's")
    shapes = expected_shapes(c)
    problems += [f"{n} dropped" for n in set(tensors) - set(shapes)
                 if n.removeprefix("model.") not in shapes]
    problems += [f"{n} missing" for n in set(shapes) - {k.removeprefix("model.") for k in tensors}]
    return problems


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from .conftest import write_conversations

    tmp = tmp_path_factory.mktemp("dflash-serve")
    conv = write_conversations(tmp / "c.jsonl")
    over = tiny_overrides(conv, **{"algorithm": "dflash", "algorithm.num_layers": 2,
                                   "algorithm.block_size": 4, "trainer.max_steps": 1,
                                   "decode.enabled": "false"})
    train(compose(over), tmp / "run")
    return tmp / "run"


@pytest.mark.parametrize("fmt", ["vllm", "sglang"])
def test_dflash_export_loads_in_vllm_0_33_and_sglang_0_5_23(run, fmt):
    from specbench.checkpoint import read_run_config
    from specbench.target import load_target, rope_theta_of

    dest = export_run(run, fmt, out=run.parent / f"exp-{fmt}", force=True)
    c = json.loads((dest / "config.json").read_text())
    t = load_file(str(dest / "model.safetensors"))
    target = load_target(read_run_config(run).model)
    facts = {**TARGET, "rope_theta": rope_theta_of(target.config)}
    assert vllm_0_33_problems(c, t, facts) == []
    assert sglang_0_5_23_problems(c, t, facts, target.tokenizer) == []
    assert c["block_size"] == c["dflash_config"]["block_size"] == 4
    assert c["num_hidden_layers"] == 2 and c["model_type"] == "qwen3"
    assert c["torch_dtype"] == "bfloat16" and all(v.dtype == torch.bfloat16 for v in t.values())
    assert not {"embed_tokens.weight", "lm_head.weight"} & set(t)
    trained = load_file(str(run / "draft.safetensors"))
    assert set(t) == set(trained)  # the trained tensors under the engines' own names


def test_the_rules_catch_broken_exports(run):
    dest = export_run(run, "vllm", out=run.parent / "exp-rules", force=True)
    c = json.loads((dest / "config.json").read_text())
    t = load_file(str(dest / "model.safetensors"))
    prefixed = {f"model.{k}": v for k, v in t.items()}
    assert any("model.model." in p for p in vllm_0_33_problems(c, prefixed))
    assert sglang_0_5_23_problems(c, prefixed) == []  # SGLang strips the prefix
    assert vllm_0_33_problems({**c, "architectures": ["Qwen3ForCausalLM"]}, t)
    last = {**c, "dflash_config": {**c["dflash_config"], "target_layer_ids": [0, 3]}}
    assert vllm_0_33_problems(last, t) == []  # vLLM can capture the last layer
    assert any("never captured" in p for p in sglang_0_5_23_problems(last, t))
    no_mask = {**c, "dflash_config": {k: v for k, v in c["dflash_config"].items()
                                      if k != "mask_token_id"}}
    assert any("mask_token_id None" in p for p in vllm_0_33_problems(no_mask, t))
    causal = {**c, "layer_types": ["sliding_attention"] * 2}
    assert any("causal" in p for p in vllm_0_33_problems(causal, t))
    extra = {**t, "lm_head.weight": torch.zeros(320, 64), "t2d": torch.ones(320, dtype=bool)}
    assert any("'t2d'" in p for p in vllm_0_33_problems(c, extra))
    assert "t2d dropped" in sglang_0_5_23_problems(c, extra)


def test_export_rebuilds_the_trained_draft(run):
    from specbench.algorithms import get_algorithm
    from specbench.checkpoint import read_run_config
    from specbench.target import load_target

    dest = export_run(run, "sglang", out=run.parent / "exp-rebuild", dtype="float32",
                      force=True)
    tensors = load_file(str(dest / "model.safetensors"))
    cfg = read_run_config(run)
    back = get_algorithm("dflash").from_state(cfg.algorithm, load_target(cfg.model), tensors)
    state = load_file(str(run / "draft.safetensors"))
    assert all(torch.equal(v, state[k]) for k, v in back.trainable_state_dict().items())


def test_dflash_serving_commands(run):
    """vLLM 0.33 needs num_speculative_tokens (block_size - 1: it never reads block_size);
    SGLang 0.5.23's --speculative-num-draft-tokens is the whole block."""
    out = run.parent / "my-draft"
    proc = subprocess.run([sys.executable, "-m", "specbench.export", str(run), "--format",
                           "sglang", "--out", str(out), "--force"], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    serving = (out / "SERVING.md").read_text()
    argv = shlex.split(next(x for x in serving.splitlines() if x.startswith("vllm serve ")))
    spec = json.loads(argv[argv.index("--speculative-config") + 1])
    assert spec == {"method": "dflash", "model": str(out.resolve()),
                    "num_speculative_tokens": 3}
    sgl = shlex.split(next(x for x in serving.splitlines() if x.startswith("python -m sglang")))
    flags = dict(zip(sgl[3::2], sgl[4::2]))
    assert flags["--speculative-algorithm"] == "DFLASH"
    assert flags["--speculative-num-draft-tokens"] == "4"
    assert re.search(r"vLLM 0\.33\.0.*\n.*\n# SGLang 0\.5\.23", serving)
