"""EAGLE-3's serving export (``--format sglang`` or ``vllm``, the same files): ``config.json``
for ``LlamaForCausalLMEagle3`` (draft_vocab_size, target_hidden_size, aux layer ids, the target's
RoPE settings), written at training start as ``RUN_DIR/draft_config.json``, and
``model.safetensors`` with ``fc``, ``midlayer.*``, ``norm``, ``lm_head``, and, only where the
draft vocabulary is smaller than the target's, ``d2t`` (int64) and ``t2d`` (bool): vLLM 0.33
creates its ``draft_id_to_target_id`` only when the two sizes differ and refuses a ``d2t``
otherwise. No ``embed_tokens`` (the engine shares the target's). ``serving_commands``: the
vLLM and SGLang lines that load it (docs/serving.md)."""

from __future__ import annotations

import json
import shlex
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
    tensors = cast(state, dtype)
    if config.get("draft_vocab_size") == config.get("vocab_size"):
        # vLLM 0.33 (llama_eagle3.py) has no draft_id_to_target_id to load a d2t into when the
        # vocabularies are equal; SGLang 0.5.23 needs none (its hot-token map stays unset)
        tensors = {k: v for k, v in tensors.items() if k not in ("d2t", "t2d")}
    return config, tensors


# The engine versions whose loaders were read against this export (docs/serving.md).
VLLM_VERSIONS = "vLLM 0.33.0"
SGLANG_VERSIONS = "SGLang 0.5.23"


def serving_commands(fmt: str, export_dir, cfg) -> list[str]:
    """The exact serve lines for an export: vLLM with ``method`` given (vLLM otherwise picks
    EAGLE-3 only when the draft path contains "eagle3"), SGLang with the run's tree settings."""
    from specbench.algorithms.eagle3.config import tree_settings
    from specbench.export import serving_target

    (target, rev), draft = serving_target(cfg.model), str(export_dir)
    alg = cfg.algorithm
    spec = json.dumps({"method": "eagle3", "model": draft,
                       "num_speculative_tokens": int(alg.ttt_length)})
    tree = tree_settings(alg)
    lines = [f"# {VLLM_VERSIONS} (chain of {int(alg.ttt_length)} draft tokens, "
             "algorithm.ttt_length):",
             f"vllm serve {shlex.quote(target)}{rev} --speculative-config {shlex.quote(spec)}",
             f"# {SGLANG_VERSIONS} (EAGLE-2 tree: top_k {tree['top_k']}, depth {tree['depth']} "
             f"= {tree['depth'] + 1} steps, {tree['total_token']} tokens with the root):",
             f"python -m sglang.launch_server --model-path {shlex.quote(target)}{rev} "
             f"--speculative-algorithm EAGLE3 --speculative-draft-model-path "
             f"{shlex.quote(draft)} --speculative-num-steps {tree['depth'] + 1} "
             f"--speculative-eagle-topk {tree['top_k']} "
             f"--speculative-num-draft-tokens {tree['total_token']}"]
    if target == "<TARGET>":
        lines.append("# the run's target has random weights (model.source=random): replace "
                     "<TARGET> with a model that has exactly those weights")
    return lines
