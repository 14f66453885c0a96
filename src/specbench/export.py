"""Export a trained draft to a directory a serving engine loads.

    python -m specbench.export outputs/2026-11-27/12-00-00-eagle3 --format sglang
    python -m specbench.export <run_dir> --format vllm [--out DIR] [--dtype bfloat16] [--force]

What each algorithm writes is its own (``export_formats`` and ``export_files`` on its class,
see ``algorithms/base.py``): EAGLE-3 exports to both formats (``LlamaForCausalLMEagle3``),
Medusa to vLLM's ``MedusaModel`` (SGLang has no Medusa). Every export is ``config.json`` and
``model.safetensors``; floating tensors are cast to ``--dtype``, integer and bool ones kept.
The algorithm's ``serving_commands`` (the engine versions known to load the export and the
exact serve command, docs/serving.md) are printed after the export and written to
``SERVING.md`` in it.

A run that did not finish (no ``draft.safetensors``: stopped or interrupted before its last
step) is exported from its latest checkpoint only with ``--allow-unfinished``.

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
import shlex
import sys
from pathlib import Path

import torch

from specbench.algorithms import get_algorithm
from specbench.checkpoint import (
    check_replaceable,
    latest_checkpoint,
    read_run_config,
    read_run_weights,
    run_target_config,
    save_weights,
    staged_dir,
)
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.log import get_logger

log = get_logger(__name__)

FORMATS = ("vllm", "sglang")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
MARKER = ".specbench-export"


def check_format(fmt: str, algorithm: str, setting: str = "--format") -> None:
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r} ({setting}); choose one of "
                        f"{', '.join(FORMATS)}.")
    algo = get_algorithm(algorithm)
    if not algo.export_formats:
        why = algo.export_notes.get(fmt)
        raise UserError(f"No export is defined for algorithm {algorithm!r}"
                        f"{f' ({why})' if why else ''}; drop {setting}.")
    if fmt not in algo.export_formats:
        why = algo.export_notes.get(fmt, "not supported")
        raise UserError(f"{setting}: algorithm={algorithm} cannot be exported to {fmt} ({why}); "
                        f"it exports to {', '.join(algo.export_formats)}.")


def check_export_settings(cfg) -> None:
    """Fail before training, not after it, on ``export=[...]`` formats the run's algorithm
    cannot be exported to (``cfg``: the composed run config)."""
    for fmt in cfg.get("export") or []:
        check_format(str(fmt), str(cfg.algorithm.name), f"export=[{fmt}]")


def _load_weights(run_dir: Path, allow_unfinished: bool = False):
    ckpt = latest_checkpoint(run_dir)
    if not (run_dir / "draft.safetensors").is_file():
        if ckpt is None:
            raise UserError(f"{run_dir} has no trained draft (no draft.safetensors and no "
                            "checkpoint): the run did not finish a single checkpoint. Train it "
                            "to the end, or resume it with trainer.resume=true.")
        if not allow_unfinished:
            raise UserError(f"{run_dir} did not finish: it has no draft.safetensors, only its "
                            f"latest checkpoint {ckpt.name}{_steps_note(run_dir, ckpt)}. Finish "
                            "the run (resume it with trainer.resume=true), or pass "
                            "--allow-unfinished to export that checkpoint.")
        log.warning(f"exporting the unfinished run's latest checkpoint "
                    f"{ckpt.name}{_steps_note(run_dir, ckpt)} (--allow-unfinished)")
    return read_run_weights(run_dir, use_checkpoint=True)


def _steps_note(run_dir: Path, ckpt: Path) -> str:
    """" (step N of M)" from the checkpoint's name and the summary, where they say it."""
    try:
        step = int(ckpt.name.removeprefix("step-"))
        total = json.loads((run_dir / "summary.json").read_text())["checklist"][
            "expected_optimizer_steps"]
        return f" (step {step} of {int(total)})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None,
               dtype: str = "bfloat16", force: bool = False,
               trust_remote_code: bool = False, allow_unfinished: bool = False) -> Path:
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
    state = _load_weights(run_dir, allow_unfinished)

    def target():  # only for an algorithm whose export needs a frozen target tensor
        from specbench.target import load_target

        return load_target(run_target_config(cfg, trust_remote_code),
                           seed=int(cfg.get("trainer", {}).get("seed", 0)))

    config, tensors = get_algorithm(name).export_files(fmt, run_dir, cfg, state, DTYPES[dtype],
                                                       target)
    commands = get_algorithm(name).serving_commands(fmt, dest.resolve(), cfg)
    with staged_dir(dest, MARKER, protect) as tmp:
        save_weights(tmp / "model.safetensors", tensors, {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if commands:
            (tmp / "SERVING.md").write_text(serving_text(name, fmt, commands))
    if commands:
        log.info(f"serve {dest} with (also in {dest / 'SERVING.md'}; docs/serving.md):\n"
                 + "\n".join(commands))
    return dest


def serving_target(model_cfg) -> tuple[str, str]:
    """The run's target as a serving engine takes it, and extra flags: the hub id (with its
    ``--revision``), the local directory, the embedded SmolLM2's dequantised copy (the weights
    the draft was trained on), or ``<TARGET>`` for random weights, which no engine can load."""
    source = enum_value(model_cfg.source)
    if source == "hub":
        rev = model_cfg.get("revision")
        return str(model_cfg.hub_id), (f" --revision {shlex.quote(str(rev))}" if rev else "")
    if source == "local":
        return str(model_cfg.path), ""
    if source == "embedded":
        from specbench.embedded import embedded_model_dir

        return str(embedded_model_dir()), ""
    return "<TARGET>", ""


def serving_text(algorithm: str, fmt: str, commands: list[str]) -> str:
    """SERVING.md of an export: the algorithm's serve lines (``serving_commands``)."""
    return (f"# Serving this export ({algorithm}, --format {fmt})\n\nWritten by "
            "`python -m specbench.export`; see specbench's docs/serving.md for which engine "
            "versions load which format.\n\n```bash\n" + "\n".join(commands) + "\n```\n")


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
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export an unfinished run's latest checkpoint (refused otherwise)")
    args = p.parse_args(argv)
    try:
        dest = export_run(args.run_dir, args.format, args.out, args.dtype, args.force,
                          trust_remote_code=args.trust_remote_code,
                          allow_unfinished=args.allow_unfinished)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info(f"exported {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
