"""DFlash's serving export (``--format vllm`` or ``sglang``, the same files): the z-lab layout
that both engines load for a DFlash draft, as read in their released code (vLLM 0.33.0
``model_executor/models/qwen3_dflash.py`` and ``v1/spec_decode/dflash.py``; SGLang 0.5.23
``srt/models/dflash.py`` and ``srt/speculative/dflash_utils.py``; docs/dflash.md#export).

- ``config.json``: ``architectures: ["DFlashDraftModel"]`` (vLLM rewrites any other draft
  architecture to ``DFlash<arch>``, which has no loader), ``model_type: qwen3`` (the draft's
  layers are Qwen3 layers, q_norm/k_norm included), the draft's shapes, the target's RoPE
  (written out: vLLM's default theta is 1e6, SGLang's 10000), ``block_size`` and
  ``dflash_config`` with ``mask_token_id``, ``mask_token`` (SGLang checks the tokenizer agrees)
  and ``target_layer_ids`` (0-based, the output of each decoder layer, sorted: both engines add
  1 and capture the input of the next layer, in layer order). No ``is_causal`` and no sliding
  ``layer_types``: both engines then run the block non-causally, as it was trained.
- ``model.safetensors``: the trained tensors under their bare names (``fc``, ``hidden_norm``,
  ``layers.{i}.*``, ``norm``): vLLM prepends ``model.`` itself and refuses unknown names. No
  ``embed_tokens`` / ``lm_head``: both engines use the target's, as the draft was trained.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from specbench.algorithms.base import cast
from specbench.errors import UserError

ARCHITECTURE = "DFlashDraftModel"
VLLM_VERSIONS = "vLLM 0.33.0"
SGLANG_VERSIONS = "SGLang 0.5.23"


def serving_config(*, hidden_size: int, intermediate_size: int, num_layers: int,
                   num_attention_heads: int, num_key_value_heads: int, head_dim: int,
                   rms_norm_eps: float, max_position_embeddings: int, vocab_size: int,
                   rope_theta: float, rope_parameters: dict | None, target_layers: list[int],
                   num_target_layers: int, block_size: int, mask_token_id: int,
                   mask_token: str | None) -> dict:
    """The engines' ``config.json`` of a DFlash draft (written at training start as
    ``RUN_DIR/draft_config.json``; the export copies it with its dtype). ``rope_parameters``:
    the target's (transformers 5), so that scaled RoPE (Llama-3's) is served as trained."""
    rope = {"rope_type": "default", **dict(rope_parameters or {}),
            "rope_theta": float(rope_theta)}
    scaled = rope["rope_type"] != "default"
    dflash = {"block_size": int(block_size), "mask_token_id": int(mask_token_id),
              "target_layer_ids": sorted(int(i) for i in target_layers)}
    if mask_token is not None:
        dflash["mask_token"] = mask_token
    return {"architectures": [ARCHITECTURE], "model_type": "qwen3",
            "hidden_size": int(hidden_size), "intermediate_size": int(intermediate_size),
            "num_hidden_layers": int(num_layers),
            "num_attention_heads": int(num_attention_heads),
            "num_key_value_heads": int(num_key_value_heads), "head_dim": int(head_dim),
            "hidden_act": "silu", "rms_norm_eps": float(rms_norm_eps), "attention_bias": False,
            "max_position_embeddings": int(max_position_embeddings),
            "vocab_size": int(vocab_size), "tie_word_embeddings": False,
            "rope_theta": float(rope_theta), "rope_scaling": rope if scaled else None,
            "rope_parameters": rope,
            "layer_types": ["full_attention"] * int(num_layers),
            "block_size": int(block_size), "num_target_layers": int(num_target_layers),
            "dflash_config": dflash}


def export_files(run_dir: Path, state: dict, dtype) -> tuple[dict, dict]:
    from specbench.io import read_json

    path = Path(run_dir) / "draft_config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} lacks draft_config.json (written at the start of every "
                        "DFlash run); it was not trained by this specbench version. Train it "
                        "again to export it.")
    config = read_json(path, "Train the run again with this specbench version.")
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    return config, cast(state, dtype)


def serving_commands(fmt: str, export_dir, cfg) -> list[str]:
    """The exact serve lines: vLLM counts the mask tokens (block_size - 1, required, never
    read from the config), SGLang the whole verify window (block_size)."""
    from specbench.export import serving_target

    (target, rev), draft = serving_target(cfg.model), str(export_dir)
    block = int(cfg.algorithm.block_size)
    spec = json.dumps({"method": "dflash", "model": draft,
                       "num_speculative_tokens": block - 1})
    lines = [f"# {VLLM_VERSIONS} (block of {block}: the anchor and {block - 1} drafted tokens, "
             "algorithm.block_size; needs a non-causal attention backend such as "
             "FlashAttention):",
             f"vllm serve {shlex.quote(target)}{rev} --speculative-config {shlex.quote(spec)}",
             f"# {SGLANG_VERSIONS} (--speculative-num-draft-tokens is the whole block, the "
             "anchor included):",
             f"python -m sglang.launch_server --model-path {shlex.quote(target)}{rev} "
             f"--speculative-algorithm DFLASH --speculative-draft-model-path "
             f"{shlex.quote(draft)} --speculative-num-draft-tokens {block}"]
    if target == "<TARGET>":
        lines.append("# the run's target has random weights (model.source=random): replace "
                     "<TARGET> with a model that has exactly those weights")
    return lines
