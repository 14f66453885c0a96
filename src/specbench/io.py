"""File helpers every module shares: atomic writes, JSON / JSON-lines reading, stable hashes,
the cache directory and file locks. Light imports only (no torch), so that the sweep callback
and the run tracker stay quick to import.

- ``atomic_write_text`` / ``atomic_write_bytes`` / ``atomic_open``: write a temporary file
  beside the target, fsync it and rename it into place; a failure leaves the old file (or none)
  and no temporary file.
- ``read_json``: a JSON object, or a UserError naming the file and what is wrong with it.
- ``iter_jsonl`` / ``read_jsonl``: JSON lines with their line numbers; a cut-off last line (the
  writer died mid-row) is dropped by ``read_jsonl``, any other bad line is a UserError naming
  the file and line.
- ``stable_hash``: sha256 of a canonical JSON form (sorted keys), for fingerprints and keys.
- ``cache_root``: ``$SPECBENCH_CACHE``, else ``$XDG_CACHE_HOME/specbench`` or
  ``~/.cache/specbench``.
- ``file_lock``: an exclusive OS lock (``filelock``), released when the process dies.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specbench.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp gives 0600)


# ------------------------------------------------------------------------------- writing

@contextmanager
def atomic_open(path: Path, mode: str = "w", encoding: str | None = "utf-8"):
    """A file object for ``path`` (mode ``"w"`` or ``"wb"``) whose content replaces ``path``
    only when the block ends without an error; otherwise nothing is left behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON (keys in their order; other values as ``str``), atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------- reading

def json_type(v) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(v), "null" if v is None else "number")


def read_json(path: Path, hint: str = "") -> dict:
    """A JSON object from ``path``; a UserError naming the file if it is missing, unreadable,
    not JSON or not an object (``hint``: what the user can do about it)."""
    path = Path(path)
    why = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        why = "is missing"
    except UnicodeDecodeError:
        why = "is not text (binary or corrupt)"
    except ValueError as err:
        why = f"is not valid JSON ({err}): truncated or corrupt"
    except OSError as err:
        why = f"cannot be read ({err.strerror or err})"
    else:
        if isinstance(data, dict):
            return data
        why = f"holds a JSON {type(data).__name__}, not an object: corrupt"
    raise UserError(f"{path} {why}." + (f" {hint}" if hint else ""))


class BadLine(ValueError):
    """A JSON-lines line that is not UTF-8 (``kind="utf8"``) or not JSON (``kind="json"``);
    ``reason`` is the decoder's short reason, ``where`` the byte offset in the file (utf8) or
    the column in the line (json), ``cut_off`` says the line is the file's last and has no line
    end (its writer stopped mid-row)."""

    def __init__(self, kind: str, reason: str, where: int, cut_off: bool):
        self.kind, self.reason, self.where, self.cut_off = kind, reason, where, cut_off
        if kind == "utf8":
            text = f"is not UTF-8 text (bad byte at offset {where})"
        else:
            cut = " (cut off: the file ends in the middle of a row)" if cut_off else ""
            text = f"is not a JSON row{cut}: {reason} (column {where})"
        super().__init__(text)


def open_bytes(path: Path):
    """``path`` opened for reading bytes, decompressed on the fly when its name ends in .gz."""
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def iter_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, value) for every non-blank line of a JSON-lines file, read as a stream;
    the value is a ``BadLine`` for a line that does not decode."""
    offset = 0
    with open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            cut_off = not raw.endswith(b"\n")
            try:
                yield lineno, json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError as err:
                yield lineno, BadLine("utf8", err.reason, start + err.start, cut_off)
            except json.JSONDecodeError as err:
                yield lineno, BadLine("json", err.msg, err.colno, cut_off)


def read_jsonl(path: Path, hint: str = "", cut_off_ok: bool = True) -> list[dict]:
    """The rows (JSON objects) of a JSON-lines file. A cut-off last line is dropped (unless
    ``cut_off_ok=False``); a missing file, a line that is not UTF-8 or not JSON, or a row that
    is not an object is a UserError naming the file and line (``hint``: what to do)."""
    path = Path(path)
    end = f" {hint}" if hint else ""
    rows = []
    try:
        for lineno, value in iter_jsonl(path):
            if isinstance(value, BadLine):
                if value.cut_off and cut_off_ok:
                    break
                raise UserError(f"{path} line {lineno} {value}.{end}")
            if not isinstance(value, dict):
                raise UserError(f"{path} line {lineno} is a JSON {json_type(value)}, not an "
                                f"object (a row).{end}")
            rows.append(value)
    except FileNotFoundError:
        raise UserError(f"{path} is missing.{end}") from None
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err.strerror or err}).{end}") from None
    return rows


# ------------------------------------------------------------------------------- hashing

def canonical_json(obj, compact: bool = True, ensure_ascii: bool = True) -> str:
    """The one JSON text of ``obj`` that hashes use: sorted keys, other values as ``str``.
    ``compact=False`` keeps json's default ``", "`` / ``": "`` separators and ``ensure_ascii=False``
    writes non-ASCII characters as they are: the feature-cache key, the data's row keys and
    its content hash were first hashed that way, and keep their values."""
    return json.dumps(obj, sort_keys=True, default=str, ensure_ascii=ensure_ascii,
                      separators=(",", ":") if compact else None)


def stable_hash(obj, compact: bool = True) -> str:
    """The sha256 (hex) of ``canonical_json(obj, compact)``."""
    return hashlib.sha256(canonical_json(obj, compact).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- cache, locks

def cache_root() -> Path:
    """Where specbench keeps converted models and other caches (``SPECBENCH_CACHE`` overrides)."""
    if os.environ.get("SPECBENCH_CACHE"):
        return Path(os.environ["SPECBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "specbench"


@contextmanager
def file_lock(path: Path, waiting: str | None = None):
    """Hold an exclusive lock on the file ``path`` (created if needed) for the block; another
    process blocks until it is free, after printing ``waiting`` (if given). The OS releases
    the lock if the process dies."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting:
            from specbench.log import get_logger

            get_logger(__name__).info(waiting.removeprefix("[specbench] "))
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
