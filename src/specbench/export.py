"""Export a trained draft to a directory a serving engine loads.

    python -m specbench.export outputs/2026-11-27/12-00-00-eagle3 --format sglang
    python -m specbench.export <run_dir> --format vllm [--out DIR] [--dtype bfloat16] [--force]

- EAGLE-3 (``--format sglang`` or ``vllm``, the same files): ``config.json`` for
  ``LlamaForCausalLMEagle3`` (draft_vocab_size, target_hidden_size, aux layer ids, the target's
  RoPE settings) and ``model.safetensors`` with ``fc``, ``midlayer.*``, ``norm``, ``lm_head``,
  ``d2t`` (int64) and ``t2d`` (bool); no ``embed_tokens`` (the engine shares the target's).
- Medusa (``--format vllm``; SGLang has no Medusa): vLLM's ``MedusaModel`` config and
  ``blocks.{i}.layers.{j}.weight/bias`` + ``lm_heads.{i}.weight``. With ``lm_head=shared`` the
  config sets ``original_lm_head`` and the target's lm_head is written once as
  ``lm_heads.0.weight`` (vLLM reads it as the shared head).

The output directory is written to a temporary name and renamed into place; an existing export
is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from specbench.checkpoint import latest_checkpoint, staged_dir
from specbench.errors import UserError

FORMATS = ("vllm", "sglang")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _load_run(run_dir: Path):
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a specbench run directory (no config.json). Pass the "
                        "directory a `python -m specbench` run printed.")
    cfg = OmegaConf.create(json.loads((run_dir / "config.json").read_text()))
    weights = run_dir / "draft.safetensors"
    if not weights.is_file():
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"{run_dir} has no trained draft (no draft.safetensors and no "
                            "checkpoint): the run did not finish a single checkpoint. Train it "
                            "to the end, or resume it with trainer.resume=true.")
        weights = ckpt / "draft.safetensors"
    return cfg, load_file(str(weights))


def _cast(tensors: dict, dtype: torch.dtype) -> dict:
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
            for k, v in tensors.items()}


def eagle3_files(run_dir: Path, cfg, state: dict, dtype) -> tuple[dict, dict]:
    path = run_dir / "draft_config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} lacks draft_config.json (written by EAGLE-3 runs); it was "
                        "not trained by this specbench version.")
    config = json.loads(path.read_text())
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    return config, _cast(state, dtype)


def medusa_files(run_dir: Path, cfg, state: dict, dtype) -> tuple[dict, dict]:
    a = cfg.algorithm
    heads = a.num_heads
    tensors = dict(state)
    shared = str(a.lm_head) == "shared"
    if shared:
        from specbench.target import load_target

        target = load_target(cfg.model)
        tensors["lm_heads.0.weight"] = target.lm_head.weight.detach().clone()
    vocab, hidden = tensors["lm_heads.0.weight"].shape
    config = {
        "model_type": "medusa", "architectures": ["MedusaModel"],
        "hidden_size": hidden, "vocab_size": vocab, "truncated_vocab_size": vocab,
        "num_heads": heads, "num_hidden_layers": a.num_layers,
        "medusa_fc_bias": True, "original_lm_head": shared,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    return config, _cast(tensors, dtype)


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None,
               dtype: str = "bfloat16", force: bool = False) -> Path:
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if dtype not in DTYPES:
        raise UserError(f"Unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    cfg, state = _load_run(run_dir)
    name = cfg.algorithm.name
    if name == "eagle3":
        config, tensors = eagle3_files(run_dir, cfg, state, DTYPES[dtype])
    elif name == "medusa":
        if fmt == "sglang":
            raise UserError("SGLang has no Medusa support; export Medusa with --format vllm.")
        config, tensors = medusa_files(run_dir, cfg, state, DTYPES[dtype])
    else:
        raise UserError(f"No export is defined for algorithm {name!r}.")
    dest = Path(out) if out else run_dir / f"export-{fmt}"
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists; pass --force to replace it, or --out DIR.")
    with staged_dir(dest) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    try:
        dest = export_run(args.run_dir, args.format, args.out, args.dtype, args.force)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[specbench] exported {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
