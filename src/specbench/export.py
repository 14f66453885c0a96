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

The output directory is written to a temporary name and renamed into place, with a marker file
(``.specbench-export``) in it; an existing export is replaced only with ``--force``, and only if
it holds that marker (a directory a previous export wrote): never another directory, a file, the
run directory or a parent of it. The target is loaded (Medusa with a shared lm_head) without
``trust_remote_code`` unless ``--trust-remote-code`` is given: a run directory's config never
enables it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from specbench.checkpoint import (
    check_replaceable,
    latest_checkpoint,
    read_json,
    read_run_config,
    read_run_weights,
    run_target_config,
    save_weights,
    staged_dir,
)
from specbench.errors import UserError

FORMATS = ("vllm", "sglang")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
MARKER = ".specbench-export"
# the formats each algorithm exports to (SGLang has no Medusa)
ALGORITHM_FORMATS = {"eagle3": ("vllm", "sglang"), "medusa": ("vllm",)}


def check_format(fmt: str, algorithm: str, setting: str = "--format") -> None:
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r} ({setting}); choose one of "
                        f"{', '.join(FORMATS)}.")
    if algorithm not in ALGORITHM_FORMATS:
        raise UserError(f"No export is defined for algorithm {algorithm!r}; drop {setting}.")
    if fmt not in ALGORITHM_FORMATS[algorithm]:
        why = "SGLang has no Medusa support" if algorithm == "medusa" else "not supported"
        raise UserError(f"{setting}: algorithm={algorithm} cannot be exported to {fmt} ({why}); "
                        f"it exports to {', '.join(ALGORITHM_FORMATS[algorithm])}.")


def check_export_settings(cfg) -> None:
    """Fail before training, not after it, on ``export=[...]`` formats the run's algorithm
    cannot be exported to (``cfg``: the composed run config)."""
    for fmt in cfg.get("export") or []:
        check_format(str(fmt), str(cfg.algorithm.name), f"export=[{fmt}]")


def _load_weights(run_dir: Path):
    if not (run_dir / "draft.safetensors").is_file() and latest_checkpoint(run_dir) is None:
        raise UserError(f"{run_dir} has no trained draft (no draft.safetensors and no "
                        "checkpoint): the run did not finish a single checkpoint. Train it "
                        "to the end, or resume it with trainer.resume=true.")
    return read_run_weights(run_dir, use_checkpoint=True)


def _cast(tensors: dict, dtype: torch.dtype) -> dict:
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
            for k, v in tensors.items()}


def eagle3_files(run_dir: Path, cfg, state: dict, dtype) -> tuple[dict, dict]:
    path = run_dir / "draft_config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} lacks draft_config.json (written by EAGLE-3 runs); it was "
                        "not trained by this specbench version.")
    config = read_json(path, "Train the run again with this specbench version.")
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    return config, _cast(state, dtype)


def medusa_files(run_dir: Path, cfg, state: dict, dtype,
                 trust_remote_code: bool = False) -> tuple[dict, dict]:
    a = cfg.algorithm
    heads = a.num_heads
    tensors = dict(state)
    shared = str(a.lm_head) == "shared"
    if shared:
        from specbench.target import load_target

        target = load_target(run_target_config(cfg, trust_remote_code),
                             seed=int(cfg.get("trainer", {}).get("seed", 0)))
        tensors["lm_heads.0.weight"] = target.lm_head.weight.detach().clone()
    if "lm_heads.0.weight" not in tensors:
        raise UserError(f"{run_dir}'s draft weights lack lm_heads.0.weight: they do not match "
                        "its config.json (algorithm.lm_head). Train the run again.")
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
               dtype: str = "bfloat16", force: bool = False,
               trust_remote_code: bool = False) -> Path:
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if dtype not in DTYPES:
        raise UserError(f"Unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    cfg = read_run_config(run_dir)
    name = str(cfg.algorithm.name)
    check_format(fmt, name)
    dest = Path(out) if out else run_dir / f"export-{fmt}"
    protect = [run_dir]
    check_replaceable(dest, MARKER, protect)  # before the work, not after it
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists; pass --force to replace it, or --out DIR.")
    state = _load_weights(run_dir)
    if name == "eagle3":
        config, tensors = eagle3_files(run_dir, cfg, state, DTYPES[dtype])
    else:
        config, tensors = medusa_files(run_dir, cfg, state, DTYPES[dtype], trust_remote_code)
    with staged_dir(dest, MARKER, protect) as tmp:
        save_weights(tmp / "model.safetensors", tensors, {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    p.add_argument("--force", action="store_true",
                   help="replace an earlier export (only a directory an export wrote)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the target's own modelling code (never read from the run)")
    args = p.parse_args(argv)
    try:
        dest = export_run(args.run_dir, args.format, args.out, args.dtype, args.force,
                          trust_remote_code=args.trust_remote_code)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[specbench] exported {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
