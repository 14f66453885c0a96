"""Issue 11: EAGLE-3 exports checked against the weight-loading rules of the engines that serve
them, as read in their released code (the wheels on PyPI, not installed here):

- vLLM 0.33.0, vllm/model_executor/models/llama_eagle3.py (Eagle3LlamaForCausalLM.__init__ and
  load_weights) and vllm/v1/worker/gpu_model_runner.py (_get_eagle3_aux_layers_from_config);
- SGLang 0.5.23, python/sglang/srt/models/llama_eagle3.py (LlamaForCausalLMEagle3.load_weights)
  and python/sglang/srt/models/llama.py (set_eagle3_layers_to_capture).

Each rule says which tensor names an engine accepts given the export's config.json and the
target's vocabulary; the exports are checked with an equal and with a reduced draft vocabulary.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from specbench.config import compose
from specbench.export import export_run
from specbench.trainer import train

from .conftest import tiny_overrides

TARGET_VOCAB, TARGET_LAYERS, H = 320, 4, 64  # tiny-llama
MIDLAYER = {f"midlayer.{p}.weight" for p in (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "hidden_norm",
    "post_attention_layernorm")}


def vllm_0_33_problems(config: dict, names: set[str]) -> list[str]:
    """vLLM 0.33.0 llama_eagle3.py: ``draft_id_to_target_id`` exists only when
    draft_vocab_size (null: vocab_size) differs from the target's vocabulary; load_weights
    drops ``t2d``, renames ``d2t`` to it (AutoWeightsLoader raises "There is no module or
    parameter named 'draft_id_to_target_id'" when it does not exist) and leaves it zeros when
    ``d2t`` is missing (draft ids read as target ids). gpu_model_runner.py takes the top-level
    ``eagle_aux_hidden_state_layer_ids`` as-is and llama.py captures the *input* of those layers,
    in layer order, each once."""
    problems = []
    dv = config.get("draft_vocab_size") or config["vocab_size"]
    has_map = dv != TARGET_VOCAB
    params = {"fc.weight", "norm.weight", "lm_head.weight"} | MIDLAYER
    if has_map:
        params.add("d2t")
    for name in names - {"t2d"}:
        if name not in params:
            problems.append(f"There is no module or parameter named {name!r}"
                            if name != "d2t" else "There is no module or parameter named "
                            "'draft_id_to_target_id'")
    if has_map and "d2t" not in names:
        problems.append("draft_id_to_target_id left zeros")
    ids = config.get("eagle_aux_hidden_state_layer_ids")
    if ids != sorted(set(ids)) or len(ids) != 3:
        problems.append(f"aux ids {ids}: captured sorted and de-duplicated")
    if not all(1 <= i <= TARGET_LAYERS - 1 for i in ids):
        problems.append(f"aux ids {ids}: not the input of a target layer after the first")
    return problems


def sglang_0_5_23_problems(config: dict, names: set[str]) -> list[str]:
    """SGLang 0.5.23 llama_eagle3.py: ``d2t`` sets the hot-token map (without it draft ids are
    read as target ids), ``t2d`` is skipped, ``midlayer`` is ``layers.0``, and any other name
    without a parameter is dropped silently. llama.py captures the output of each
    ``eagle_config.eagle_aux_hidden_state_layer_ids`` id i before layer i + 1 runs, so only
    ids below the last layer are ever captured."""
    problems = []
    dv = config.get("draft_vocab_size") or config["vocab_size"]
    if dv != TARGET_VOCAB and "d2t" not in names:
        problems.append("no d2t with a reduced draft vocabulary")
    params = {"fc.weight", "norm.weight", "lm_head.weight"} | MIDLAYER
    problems += [f"{n} dropped" for n in names - {"d2t", "t2d"} - params]
    problems += [f"{n} missing" for n in params - names]
    if config.get("tie_word_embeddings"):
        problems.append("tie_word_embeddings: lm_head would be the embedding")
    ids = config["eagle_config"]["eagle_aux_hidden_state_layer_ids"]
    if not all(0 <= i and i + 1 < TARGET_LAYERS for i in ids) or len(set(ids)) != 3:
        problems.append(f"aux ids {ids}: not all captured")
    return problems


@pytest.fixture(scope="module", params=[48, TARGET_VOCAB], ids=["reduced-vocab", "equal-vocab"])
def run(request, tmp_path_factory):
    from .conftest import write_conversations

    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    conv = write_conversations(tmp / "c.jsonl")
    over = tiny_overrides(conv, **{"algorithm": "eagle3", "algorithm.ttt_length": 2,
                                   "algorithm.draft_vocab_size": request.param,
                                   "trainer.max_steps": 1, "decode.enabled": "false"})
    train(compose(over), tmp / "run")
    return tmp / "run", request.param


@pytest.mark.parametrize("fmt", ["vllm", "sglang"])
def test_eagle3_export_loads_in_vllm_0_33_and_sglang_0_5_23(run, fmt):
    run_dir, dv = run
    dest = export_run(run_dir, fmt, out=run_dir.parent / f"exp-{fmt}", force=True)
    config = json.loads((dest / "config.json").read_text())
    t = load_file(str(dest / "model.safetensors"))
    names = set(t)
    assert config["draft_vocab_size"] == dv and config["vocab_size"] == TARGET_VOCAB
    assert vllm_0_33_problems(config, names) == []
    assert sglang_0_5_23_problems(config, names) == []
    assert ("d2t" in names) == ("t2d" in names) == (dv != TARGET_VOCAB)
    assert tuple(t["fc.weight"].shape) == (H, 3 * H)
    assert tuple(t["lm_head.weight"].shape) == (dv, H)


def test_the_rules_catch_the_old_export():
    """The export before the fix (d2t and t2d always written; default aux ids [1, 1, 0] on a
    4-layer target) breaks vLLM 0.33 with equal vocabularies."""
    names = {"fc.weight", "norm.weight", "lm_head.weight", "d2t", "t2d"} | MIDLAYER
    old = {"vocab_size": TARGET_VOCAB, "draft_vocab_size": TARGET_VOCAB,
           "eagle_aux_hidden_state_layer_ids": [2, 2, 1],
           "eagle_config": {"eagle_aux_hidden_state_layer_ids": [1, 1, 0]}}
    problems = vllm_0_33_problems(old, names)
    assert "There is no module or parameter named 'draft_id_to_target_id'" in problems
    assert any("sorted and de-duplicated" in p for p in problems)
    assert any("not all captured" in p for p in sglang_0_5_23_problems(old, names))
    last = {**old, "eagle_config": {"eagle_aux_hidden_state_layer_ids": [0, 1, 3]}}
    assert any("not all captured" in p for p in sglang_0_5_23_problems(last, names - {"d2t"}))


def test_serving_commands_printed_and_written(run):
    """vLLM 0.33 vllm/config/speculative.py picks EAGLE-3 from a draft path containing
    "eagle3" unless "method" is given: the printed line gives it, with the export's absolute
    path. SGLang 0.5.23 flag names from sglang/srt/arg_groups/fields/spec.py and model.py."""
    run_dir, _ = run
    out = run_dir.parent / "my-draft"  # no "eagle3" in the path
    proc = subprocess.run([sys.executable, "-m", "specbench.export", str(run_dir), "--format",
                           "vllm", "--out", str(out), "--force"], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    serving = (out / "SERVING.md").read_text()
    vllm = next(x for x in serving.splitlines() if x.startswith("vllm serve "))
    argv = shlex.split(vllm)
    assert argv[:3] == ["vllm", "serve", "<TARGET>"]  # tiny-llama: random weights
    assert "model.source=random" in serving
    spec = json.loads(argv[argv.index("--speculative-config") + 1])
    assert spec == {"method": "eagle3", "model": str(out.resolve()), "num_speculative_tokens": 2}
    sgl = shlex.split(next(x for x in serving.splitlines() if x.startswith("python -m sglang")))
    flags = dict(zip(sgl[3::2], sgl[4::2]))
    assert flags["--speculative-algorithm"] == "EAGLE3"
    assert flags["--speculative-draft-model-path"] == str(out.resolve())
    # EAGLE's defaults top_k 10, depth 5 (6 draft steps), total_token 60 (with the root)
    assert (flags["--speculative-num-steps"], flags["--speculative-eagle-topk"],
            flags["--speculative-num-draft-tokens"]) == ("6", "10", "60")
    assert "vLLM 0.33.0" in serving and "SGLang 0.5.23" in serving
    assert vllm in proc.stdout + proc.stderr


def test_an_equal_vocab_export_rebuilds_the_draft(run):
    """An export without d2t/t2d (equal vocabularies) still rebuilds the trained draft."""
    import torch

    from specbench.algorithms.eagle3 import Eagle3
    from specbench.checkpoint import read_run_config
    from specbench.target import load_target

    run_dir, dv = run
    dest = export_run(run_dir, "sglang", out=run_dir.parent / "exp-rebuild", dtype="float32",
                      force=True)
    tensors = load_file(str(dest / "model.safetensors"))
    state = load_file(str(run_dir / "draft.safetensors"))
    cfg = read_run_config(run_dir)
    target = load_target(cfg.model)
    back = Eagle3.from_state(cfg.algorithm, target, tensors)
    assert all(torch.equal(v, state[k]) for k, v in back.trainable_state_dict().items())
    if dv == TARGET_VOCAB:
        from specbench.errors import UserError

        small = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
        with pytest.raises(UserError, match="lack d2t"):
            Eagle3.from_state(cfg.algorithm, target, small)


def test_one_serving_target_rule_for_every_algorithm():
    """The target in every serve line: the hub id (and revision), the local path, the embedded
    SmolLM2's dequantised copy (the weights the draft was trained on), <TARGET> for random."""
    from specbench.config import compose
    from specbench.embedded import embedded_model_dir
    from specbench.export import serving_target

    hub = compose(["model=llama3-8b", "model.revision=abc"]).model
    assert serving_target(hub) == (hub.hub_id, " --revision abc")
    local = compose(["model=llama3-8b", "model.source=local", "model.path=/m/x"]).model
    assert serving_target(local) == ("/m/x", "")
    assert serving_target(compose([]).model) == (str(embedded_model_dir()), "")
    assert serving_target(compose(["model=tiny-llama"]).model) == ("<TARGET>", "")
