"""Atomic checkpoints: draft weights (safetensors), optimizer/scheduler/RNG state, progress.

Layout: ``<run_dir>/checkpoints/step-0000040/`` holding ``draft.safetensors``,
``trainer_state.pt`` (tensors and plain Python values only, loaded with ``weights_only=True``)
and ``state.json``; ``<run_dir>/checkpoints/latest`` names the newest one. A checkpoint is
written into a temporary directory and renamed into place, so an interrupted write never leaves
a directory that looks complete, and an existing checkpoint is replaced only once its successor
is whole.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from specbench.errors import UserError


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None):
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path),
              metadata={k: str(v) for k, v in (metadata or {}).items()})


@contextmanager
def staged_dir(final: Path):
    """Yield a temporary directory beside ``final``; when the block succeeds it replaces
    ``final`` (an existing one only once the new copy is whole); on failure it is removed and
    ``final`` is untouched."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".old-{final.name}")
            shutil.rmtree(old, ignore_errors=True)  # left over from a crash mid-swap
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(run_dir: Path, step: int, draft_state: dict, optimizer, scheduler,
                    progress: dict, keep: int = 2) -> Path:
    root = run_dir / "checkpoints"
    final = root / f"step-{step:07d}"
    with staged_dir(final) as tmp:
        save_weights(tmp / "draft.safetensors", draft_state,
                     {"step": step, **{k: progress[k] for k in ("algorithm", "fingerprint")
                                       if k in progress}})
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state()}, tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **progress}, indent=2))
    _atomic_write_text(root / "latest", final.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def publish_weights(checkpoint_dir: Path, dest: Path) -> None:
    """Expose a checkpoint's draft weights at ``dest`` (a hard link where possible, else a
    copy), replacing any previous file atomically."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint_dir / "draft.safetensors", tmp)
    except OSError:
        shutil.copyfile(checkpoint_dir / "draft.safetensors", tmp)
    os.replace(tmp, dest)


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if path.is_dir():
            return path
    found = sorted(root.glob("step-*")) if root.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(draft tensors, trainer state, progress) of a checkpoint directory."""
    path = Path(path)
    try:
        weights = load_file(str(path / "draft.safetensors"))
        state = torch.load(path / "trainer_state.pt", weights_only=True, map_location="cpu")
        progress = json.loads((path / "state.json").read_text())
    except FileNotFoundError as err:
        raise UserError(f"Checkpoint {path} is incomplete ({err.filename} missing). Delete it "
                        "to resume from an earlier one, or start a new run.") from None
    return weights, state, progress
