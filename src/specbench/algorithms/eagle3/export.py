"""EAGLE-3's serving export (``--format sglang`` or ``vllm``, the same files): ``config.json``
for ``LlamaForCausalLMEagle3`` (draft_vocab_size, target_hidden_size, aux layer ids, the target's
RoPE settings), written at training start as ``RUN_DIR/draft_config.json``, and
``model.safetensors`` with ``fc``, ``midlayer.*``, ``norm``, ``lm_head``, ``d2t`` (int64) and
``t2d`` (bool); no ``embed_tokens`` (the engine shares the target's)."""

from __future__ import annotations

from pathlib import Path

from specbench.algorithms.base import cast
from specbench.errors import UserError
from specbench.target import rope_theta_of


def serving_config(draft_cfg) -> dict:
    d = draft_cfg.to_dict()
    d["rope_theta"] = rope_theta_of(draft_cfg)
    d.setdefault("rope_scaling", getattr(draft_cfg, "rope_scaling", None))
    return d


def export_files(run_dir: Path, state: dict, dtype) -> tuple[dict, dict]:
    from specbench.io import read_json

    path = Path(run_dir) / "draft_config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} lacks draft_config.json (written by EAGLE-3 runs); it was "
                        "not trained by this specbench version.")
    config = read_json(path, "Train the run again with this specbench version.")
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    return config, cast(state, dtype)
