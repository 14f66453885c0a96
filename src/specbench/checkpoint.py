"""Atomic checkpoints: draft weights (safetensors), optimizer/scheduler/RNG state, progress; and
reading a run directory back safely.

Layout: ``<run_dir>/checkpoints/step-0000040/`` holding ``draft.safetensors``,
``trainer_state.pt`` (tensors and plain Python values only, loaded with ``weights_only=True``),
``state.json`` (progress, and the sha256 of the two other files) and a marker file;
``<run_dir>/checkpoints/latest`` names the newest one. A checkpoint is written into a temporary
directory and renamed into place, so an interrupted write never leaves a directory that looks
complete, and an existing checkpoint is replaced only once its successor is whole.

``staged_dir`` is the one way specbench replaces a directory: it writes a marker file into what
it creates and replaces an existing directory only if it holds the same marker (or is empty),
never a file, a symbolic link, the current directory or a protected directory or a parent of one.
Loading verifies the recorded checksums, so flipped or truncated weights are refused, not
trained or decoded from.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from specbench.errors import UserError
from specbench.io import (  # read_json, write_json: also imported from here by older code
    atomic_write_text,
    file_sha256,
    read_json,
    stable_hash,
    write_json,
)

WEIGHTS, TRAINER_STATE, STATE = "draft.safetensors", "trainer_state.pt", "state.json"
DIR_MARKER = ".specbench-dir"  # staged_dir's default marker
CHECKPOINT_MARKER = ".specbench-checkpoint"


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


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    """A safetensors file whose header lists its keys sorted: the same tensors and metadata
    give the same bytes in every process (safetensors itself writes the metadata map in a
    per-process hash order)."""
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                metadata={k: str(v) for k, v in (metadata or {}).items()} or None)
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8: 8 + n]), sort_keys=True, separators=(",", ":"))
    header += " " * (-len(header) % 8)  # the data section stays 8-byte aligned
    return len(header).to_bytes(8, "little") + header.encode() + data[8 + n:]


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))


def check_replaceable(final: Path, marker: str = DIR_MARKER,
                      protect: Iterable[Path] = ()) -> None:
    """Refuse (UserError) unless ``final`` is absent, an empty directory, or a directory a
    ``staged_dir`` with this ``marker`` wrote; never the current directory, a ``protect``ed one
    or a parent of either."""
    final = Path(final)
    if final.is_symlink():
        raise UserError(f"{final} is a symbolic link; specbench does not replace it. Remove "
                        "it yourself or choose another path.")
    if not final.exists():
        return
    if not final.is_dir():
        raise UserError(f"{final} is a file, not a directory specbench wrote; it is not "
                        "replaced. Choose another path.")
    here = final.resolve()
    for p in [Path.cwd(), *protect]:
        p = Path(p).resolve()
        if here == p or here in p.parents:
            raise UserError(f"{final} is (or contains) {p}; specbench never replaces it. "
                            "Choose a new directory of its own.")
    if (final / marker).is_file() or not any(final.iterdir()):
        return
    raise UserError(f"{final} already exists and was not written by specbench (no {marker} "
                    "file in it), so it is not replaced. Move or delete it yourself, or choose "
                    "another path.")


@contextmanager
def staged_dir(final: Path, marker: str = DIR_MARKER, protect: Iterable[Path] = ()):
    """Yield a temporary directory beside ``final`` (holding the ``marker`` file); when the
    block succeeds it replaces ``final`` (an existing one only once the new copy is whole, and
    only if ``check_replaceable`` allows it); on failure it is removed and ``final`` is
    untouched."""
    final, protect = Path(final), list(protect)
    check_replaceable(final, marker, protect)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        (tmp / marker).write_text("written by specbench; a directory without this file is "
                                  "never replaced\n")
        yield tmp
        check_replaceable(final, marker, protect)  # it may have appeared meanwhile
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".old-{final.name}-"))
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _state_digest(state: dict) -> str:
    """The sha256 of a state.json's content without its own ``state_sha256``."""
    rest = {k: v for k, v in state.items() if k != "state_sha256"}
    return stable_hash(rest)


def _as_os_error(err: Exception, where: Path) -> Exception:
    """A failed write reported as safetensors' or torch's own error type: an OSError (ENOSPC)
    when the disk is full, so that callers handle it like any full disk."""
    text = str(err)
    try:
        full = shutil.disk_usage(where).free < (64 << 20)
    except OSError:
        full = False
    if full or "os error 28" in text or "No space left" in text:
        return OSError(errno.ENOSPC, f"No space left on device ({type(err).__name__}: "
                       f"{text[:200]})", str(where))
    return err


def save_checkpoint(run_dir: Path, step: int, draft_state: dict, optimizer, scheduler,
                    progress: dict, keep: int = 2, rng: dict | None = None) -> Path:
    """``optimizer``: an optimizer or its state dict (a sharded draft's, gathered whole);
    ``rng``: the RNG state to record (default: this process's)."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:07d}"
    for stale in [*root.glob(".tmp-step-*"), *root.glob(".old-step-*")] if root.is_dir() \
            else []:  # left by a process killed mid-write (one process per run directory)
        shutil.rmtree(stale, ignore_errors=True)
    with staged_dir(final, CHECKPOINT_MARKER, protect=[run_dir]) as tmp:
        try:
            save_weights(tmp / WEIGHTS, draft_state,
                         {"step": step, **{k: progress[k] for k in ("algorithm", "fingerprint")
                                           if k in progress}})
            torch.save({"optimizer": optimizer if isinstance(optimizer, dict)
                        else optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "rng": rng if rng is not None else rng_state()}, tmp / TRAINER_STATE)
        except OSError:
            raise
        except Exception as err:  # a full disk as torch's RuntimeError
            raise _as_os_error(err, tmp) from err
        sums = {name: file_sha256(tmp / name) for name in (WEIGHTS, TRAINER_STATE)}
        state = {"step": step, **progress, "sha256": sums}
        write_json(tmp / STATE, {**state, "state_sha256": _state_digest(state)})
    atomic_write_text(root / "latest", final.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def publish_weights(checkpoint_dir: Path, dest: Path) -> None:
    """Expose a checkpoint's draft weights at ``dest`` (a hard link where possible, else a
    copy), replacing any previous file atomically."""
    src = checkpoint_dir / WEIGHTS
    if dest.is_file() and os.path.samefile(src, dest):
        return  # already this file (a resume that finishes the run publishes it again)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(checkpoint_dir / WEIGHTS, tmp)
        except OSError:
            shutil.copyfile(checkpoint_dir / WEIGHTS, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_checkpoint_dir(path: Path, root: Path) -> bool:
    return (re.fullmatch(r"step-\d+", path.name) is not None and not path.is_symlink()
            and path.is_dir() and path.resolve().parent == root.resolve())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint directory of ``run_dir`` (None if there is none). A
    ``checkpoints/latest`` naming anything but a ``step-N`` directory of this run is refused."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = None
        path = root / name if name else None
        if path is None or re.fullmatch(r"step-\d+", name) is None or path.is_symlink() \
                or (path.exists() and not _is_checkpoint_dir(path, root)):
            raise UserError(f"{pointer} must name one of this run's own step-N checkpoint "
                            f"directories, but it names {name!r} (a corrupt or crafted run "
                            "directory). Write the newest step-N name into it, or delete it "
                            "to use the newest step-N directory.")
        if path.is_dir():
            return path
    found = [p for p in sorted(root.glob("step-*")) if _is_checkpoint_dir(p, root)] \
        if root.is_dir() else []
    return found[-1] if found else None


def _resume_earlier(checkpoint: Path) -> str:
    return (f"The checkpoint {checkpoint} is damaged: delete that directory to resume from an "
            "earlier checkpoint (trainer.resume=true), or start a new run.")


def _corrupt(file: Path, checkpoint: Path, why: str) -> UserError:
    return UserError(f"{file} {why}. {_resume_earlier(checkpoint)}")


def recorded_checksums(checkpoint: Path) -> dict:
    """The sha256 per file that ``state.json`` records ({} for checkpoints saved before
    checksums were recorded)."""
    state = read_json(Path(checkpoint) / STATE, _resume_earlier(checkpoint))
    sums = state.get("sha256")
    return sums if isinstance(sums, dict) else {}


def verify_file(file: Path, expected: str | None, checkpoint: Path) -> None:
    if expected is not None and file_sha256(file) != expected:
        raise _corrupt(file, checkpoint, "does not match the sha256 recorded in its "
                       f"{STATE} (altered, truncated or corrupt on disk)")


def load_safetensors(file: Path, todo: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a UserError naming it (and ``todo``) if it is not
    one (truncated, corrupt)."""
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own error type for corrupt headers
        raise UserError(f"{file} cannot be read as safetensors (truncated or corrupt: "
                        f"{str(err)[:200]}). {todo}") from None


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(draft tensors, trainer state, progress) of a checkpoint directory, its files checked
    against the checksums recorded at save time."""
    path = Path(path)
    for name in (STATE, WEIGHTS, TRAINER_STATE):
        if not (path / name).is_file():
            raise UserError(f"Checkpoint {path} is incomplete ({path / name} missing). Delete "
                            "it to resume from an earlier one, or start a new run.")
    progress = read_json(path / STATE, _resume_earlier(path))
    own = progress.pop("state_sha256", None)
    if own is not None and own != _state_digest(progress):
        raise _corrupt(path / STATE, path, "does not match the sha256 recorded in it (a value "
                       "was changed or damaged)")
    sums = progress.pop("sha256", None)
    sums = sums if isinstance(sums, dict) else {}
    for name in (WEIGHTS, TRAINER_STATE):
        verify_file(path / name, sums.get(name), path)
    weights = load_safetensors(path / WEIGHTS, _resume_earlier(path))
    try:
        state = torch.load(path / TRAINER_STATE, weights_only=True, map_location="cpu")
    except Exception as err:  # zip, pickle and unpickler errors have many types
        raise _corrupt(path / TRAINER_STATE, path, f"cannot be loaded ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng"} <= set(state):
        raise _corrupt(path / TRAINER_STATE, path, "does not hold a trainer state")
    return weights, state, progress


def read_run_config(run_dir: Path):
    """The recorded config of a run directory (``config.json``) as a DictConfig, checked to be
    one: a UserError naming the file otherwise."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a specbench run directory (no config.json). Pass the "
                        "directory a `python -m specbench` run printed as its results.")
    data = read_json(path, "It is not a config a specbench run wrote; pass another run "
                     "directory, or train again.")
    alg = data.get("algorithm")
    if not isinstance(data.get("model"), dict) or not isinstance(alg, dict) \
            or not isinstance(alg.get("name"), str):
        raise UserError(f"{path} lacks the model and algorithm sections of a specbench run "
                        "config (corrupt, or not written by specbench). Pass another run "
                        "directory, or train again.")
    try:
        cfg = OmegaConf.create(data)
        OmegaConf.resolve(cfg)
        # the algorithm's settings through its schema: a setting added after the run was
        # recorded reads as its default, one source of truth instead of scattered fallbacks
        from specbench.algorithms import CONFIGS

        if alg["name"] in CONFIGS:
            cfg.algorithm = OmegaConf.merge(OmegaConf.structured(CONFIGS[alg["name"]]),
                                            cfg.algorithm)
    except Exception as err:  # omegaconf's errors for odd keys and interpolations
        raise UserError(f"{path} is not a valid run config ({type(err).__name__}: {err}).") \
            from None
    return cfg


def run_target_config(cfg, trust_remote_code: bool = False):
    """The run's model config with ``trust_remote_code`` from the caller (a command-line flag),
    never from the run directory: a run whose config enables it is refused without the flag."""
    model = cfg.model.copy()
    if bool(model.get("trust_remote_code", False)) and not trust_remote_code:
        raise UserError("The run's config.json sets model.trust_remote_code=true; specbench "
                        "never runs a model's own code on a run directory's say-so. Pass "
                        "--trust-remote-code if you trust that model's code.")
    model.trust_remote_code = bool(trust_remote_code)
    return model


def read_run_weights(run_dir: Path, use_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """The trained draft of a run: ``draft.safetensors`` (with ``use_checkpoint``, else the
    latest checkpoint's), checked against the sha256 its checkpoint recorded. Callers check
    that a file exists first."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.is_file() and use_checkpoint and ckpt is not None:
        weights = ckpt / WEIGHTS
    if ckpt is not None and (ckpt / STATE).is_file():
        expected = recorded_checksums(ckpt).get(WEIGHTS)
        if expected is not None and file_sha256(weights) != expected:
            raise UserError(f"{weights} does not match the sha256 recorded in {ckpt / STATE} "
                            "(altered, truncated or corrupt on disk). Train the run again, or "
                            "resume it from an earlier checkpoint after deleting the damaged "
                            f"one ({ckpt}).")
    return load_safetensors(weights, "Train the run again, or resume it from an earlier "
                            "checkpoint after deleting the damaged one.")
