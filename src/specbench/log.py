"""Console and run-log output: Python ``logging`` under one ``specbench`` logger.

Modules log through ``get_logger(__name__)``. Only the main process logs: ``process_rank``
reads the launcher's variables (``RANK``, then SLURM's and submitit's), as accelerate's
``MultiProcessAdapter`` does, without importing torch, so torch-free modules such as ``sweep``
and ``tracking`` log the same way; ``rundir`` and ``sweep`` use it too. The console
shows messages through rich's handler on a terminal and as plain ``[specbench] ...`` lines
otherwise (pipes, CI, tests). ``log_to_file(path)`` adds the run's log file: ``python -m
specbench`` points it at Hydra's ``<run dir>/<job>.log``, which so holds the console output.

A command's own product (compare's tables, bench's figures, the decoding table) is printed, not
logged; errors go to stderr as one ``error:`` paragraph.
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "specbench"


def process_rank() -> int:
    """This process's rank in a job launched as several processes: ``RANK`` (torchrun,
    accelerate), else ``SLURM_PROCID`` (srun, the submitit SLURM launcher), else submitit's
    local rank (``SUBMITIT_LOCAL_GLOBALID``); 0 in a plain process."""
    for var in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


class _MainProcessOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return process_rank() == 0


class _Stdout(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time (pytest's capture included); warnings
    and errors to ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # pragma: no cover - logging never fails a run
            self.handleError(record)


class _Plain(logging.Formatter):
    """``[specbench] message``; multi-line blocks (tables) as they are; warnings marked."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            msg = f"warning: {msg}"
        return msg if "\n" in msg else f"[specbench] {msg}"


def _console_handler() -> logging.Handler:
    if sys.stdout.isatty() and os.environ.get("SPECBENCH_PLAIN_LOG") != "1":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(file=sys.stdout),
                                               show_time=False, show_path=False,
                                               markup=False, rich_tracebacks=False)
    else:
        handler = _Stdout()
        handler.setFormatter(_Plain())
    handler.addFilter(_MainProcessOnly())
    return handler


def _root() -> logging.Logger:
    logger = logging.getLogger(ROOT)
    if not getattr(logger, "_specbench_ready", False):
        logger.setLevel(logging.INFO)
        logger.propagate = False  # one console line per message, whatever Hydra set up
        logger.addHandler(_console_handler())
        logger._specbench_ready = True  # type: ignore[attr-defined]
    return logger


def get_logger(name: str = ROOT) -> logging.Logger:
    """A logger under ``specbench`` (``name`` is usually the module's ``__name__``)."""
    _root()
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def log_to_file(path) -> None:
    """Also write every message to ``path``, with time and level (replacing an earlier run's
    log file)."""
    logger = _root()
    path = os.fspath(path)
    for h in list(logger.handlers):  # one run log at a time (a multirun's jobs in turn)
        if isinstance(h, logging.FileHandler):
            if h.baseFilename == os.path.abspath(path):
                return
            logger.removeHandler(h)
            h.close()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] "
                                           "%(message)s"))
    handler.addFilter(_MainProcessOnly())
    logger.addHandler(handler)
