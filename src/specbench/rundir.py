"""The run directory's lock: one specbench process at a time per run directory.

``hold(run_dir)`` takes ``<run_dir>/.specbench.lock`` (an OS file lock through ``filelock``: it
is released when the process dies, even by kill -9) for as long as the block runs. A second
process on the same directory fails at once with a message naming the directory and the holder's
pid. The lock is reentrant within one process, so the entry point and the trainer may both hold
it. In a distributed launch only rank 0 (``RANK``) takes it; the other ranks write nothing there.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from specbench.errors import UserError
from specbench.log import process_rank

LOCK_NAME = ".specbench.lock"


class RunDirBusy(UserError):
    """Another process holds the run directory: touch nothing in it."""

_HELD: dict[str, FileLock] = {}


@contextmanager
def hold(run_dir: Path):
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"The run directory {run_dir} is (or lies under) an existing file, not "
                        "a directory. Choose another hydra.run.dir.") from None
    if process_rank() != 0:  # a distributed launch: rank 0 holds it
        yield
        return
    key = str(run_dir.resolve())
    lock = _HELD.get(key)
    if lock is None:
        lock = FileLock(str(run_dir / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunDirBusy(
                f"Another specbench process (pid {_holder(run_dir)}) is using the run directory "
                f"{run_dir}. Wait for it to finish, or give this run its own directory "
                "(hydra.run.dir=..., or leave the default, which is unique per launch)."
            ) from None
        _write_pid(run_dir)
        _HELD[key] = lock
        try:
            yield
        finally:
            _HELD.pop(key, None)
            lock.release()
    else:
        yield


def _pid_file(run_dir: Path) -> Path:
    return run_dir / f"{LOCK_NAME}.pid"


def _write_pid(run_dir: Path) -> None:
    try:
        _pid_file(run_dir).write_text(f"{os.getpid()}\n")
    except OSError:
        pass  # the pid is only for the message


def _holder(run_dir: Path) -> str:
    try:
        return _pid_file(run_dir).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")


def remove_if_unused(run_dir: Path) -> bool:
    """After a start that failed before anything was written: remove the files Hydra wrote
    (``.hydra/``, an empty job log, the lock) and the directory itself if nothing else is in it.
    Never removes a file specbench or the user wrote. Returns whether the directory is gone."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_dir.resolve() == Path.cwd().resolve():
        return False
    allowed = {run_dir / p for p in HYDRA_FILES} | {run_dir / LOCK_NAME, _pid_file(run_dir)}
    allowed |= {p for p in run_dir.glob("*.log") if p.stat().st_size == 0}
    present = [p for p in run_dir.rglob("*") if p.is_file() or p.is_symlink()]
    if any(p not in allowed for p in present):
        return False
    for p in present:
        p.unlink(missing_ok=True)
    for d in sorted((p for p in run_dir.rglob("*") if p.is_dir()), reverse=True):
        try:
            d.rmdir()
        except OSError:
            return False
    try:
        run_dir.rmdir()
    except OSError:
        return False
    return True


def resume_command(run_dir: Path) -> str:
    """The command that continues (or finishes) the run in ``run_dir``: its original overrides
    (from Hydra's ``.hydra/overrides.yaml``) plus ``hydra.run.dir`` and ``trainer.resume=true``."""
    import shlex

    import yaml

    overrides: list[str] = []
    try:
        loaded = yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text())
        if isinstance(loaded, list):
            overrides = [str(o) for o in loaded]
    except (OSError, yaml.YAMLError):
        pass
    keep = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.run.dir=",
                                                                    "trainer.resume="))]
    words = ["python", "-m", "specbench", *keep, f"hydra.run.dir={run_dir}",
             "trainer.resume=true"]
    return " ".join(shlex.quote(w) for w in words)


def record_hydra(run_dir: Path, cfg, hydra_cfg) -> None:
    """Write Hydra's record of this job (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``) into ``run_dir``. The app does it itself, once it holds the lock
    (``hydra.output_subdir: null``), so a refused second process never overwrites the record of
    the run that owns the directory."""
    from omegaconf import OmegaConf

    from specbench.io import atomic_write_text

    where = Path(run_dir) / ".hydra"
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_text(where / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(where / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    atomic_write_text(where / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))
