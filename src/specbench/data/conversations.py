"""Loading conversations from local files or the hub, normalising them, and hashing the result.

Accepted row forms:
- OpenAI messages: ``{"messages": [{"role": "user", "content": "..."}, ...]}``
- ShareGPT: ``{"conversations": [{"from": "human", "value": "..."}, ...]}``

Every row becomes a list of ``{"role", "content"}`` dicts with roles system/user/assistant. A row
that cannot (missing roles, empty content, undecodable text, no assistant turn) is a *bad row*:
with ``data.bad_rows=report`` it is skipped, counted and listed in the run summary; with
``data.bad_rows=error`` the run stops naming its line number. Nothing is dropped silently.

Files: ``.jsonl`` holds one row per line; ``.json`` a JSON array of rows (each numbered by the
line it starts on), a single row, or JSON lines. A file that cannot be rows at all (binary,
``null``, a number, empty, cut off inside a ``.json`` array) is a UserError naming the file and
line; in a ``.jsonl`` a cut-off last line is a bad row that says the file looks cut off.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

from specbench.config import enum_value
from specbench.errors import UserError
from specbench.io import BadLine, canonical_json, iter_jsonl, open_bytes

ROLE_ALIASES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant",
                "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant"}


@dataclass
class ConversationSet:
    rows: list[list[dict]]  # normalised conversations, in source order
    source: str
    rows_read: int = 0
    bad_rows: list[dict] = field(default_factory=list)  # {"line": n, "reason": "..."}

    @cached_property
    def sha256(self) -> str:
        return content_hash(self.rows)


def content_hash(rows: list[list[dict]]) -> str:
    """sha256 over each conversation's canonical JSON (json's default separators, non-ASCII
    as is: the recorded datasets' hashes keep their values) and a line end."""
    h = hashlib.sha256()
    for conv in rows:
        h.update(canonical_json(conv, compact=False, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def embedded_path(name: str = "chat.jsonl") -> Path:
    return Path(str(resources.files("specbench.data") / "embedded" / name))


def normalise(row) -> list[dict]:
    """Turn one raw row into role/content messages, or raise ValueError with the reason."""
    if not isinstance(row, dict):
        kind = "null" if row is None else {list: "an array", str: "a string", bool: "a boolean"}\
            .get(type(row), "a number")
        raise ValueError(f"row is {kind}, not a JSON object")
    if "messages" in row and row["messages"] is not None:
        turns, role_key, text_key = row["messages"], "role", "content"
    elif "conversations" in row and row["conversations"] is not None:
        turns, role_key, text_key = row["conversations"], "from", "value"
    else:
        raise ValueError("no 'messages' (OpenAI form) or 'conversations' (ShareGPT form) field")
    if not isinstance(turns, list) or not turns:
        raise ValueError("the conversation is empty")
    out = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            raise ValueError(f"turn {j} lacks '{role_key}' or '{text_key}'")
        role = ROLE_ALIASES.get(str(turn[role_key]).lower())
        if role is None:
            raise ValueError(f"turn {j} has unknown role {turn[role_key]!r}")
        text = turn[text_key]
        if not isinstance(text, str):
            raise ValueError(f"turn {j} ({role}) has content of type {type(text).__name__} "
                             f"({str(text)[:40]!r}), not a string of text")
        if not text.strip():
            raise ValueError(f"turn {j} ({role}) has empty content")
        if "\ufffd" in text:
            raise ValueError(f"turn {j} ({role}) has undecodable text (U+FFFD)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"turn {j} ({role}) has undecodable text ({err.reason})") from None
        out.append({"role": role, "content": text})
    first = next((m for m in out if m["role"] != "system"), None)
    if first is None or first["role"] != "user":
        raise ValueError("the first non-system turn is not from the user")
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("no assistant turn")
    return out


def _refuse_binary(path: Path, head: bytes) -> None:
    """A NUL byte in the first 8 KiB: a binary file, not JSON text (say so once, not per line)."""
    at = head.find(b"\0")
    if at >= 0:
        line = head.count(b"\n", 0, at) + 1
        raise UserError(f"data.path={str(path)!r} looks like a binary file, not JSON text (a NUL "
                        f"byte on line {line}). Point data.path at a "
                        "JSON-lines file with one conversation object per line.")


def _read_jsonl(path: Path):
    """Yield (line_number, row or exception) for a JSON-lines file, byte-safe."""
    with open_bytes(path) as f:
        _refuse_binary(path, f.read(8192))
    for lineno, value in iter_jsonl(path):
        if isinstance(value, BadLine) and value.kind == "utf8":
            value = ValueError(f"undecodable bytes ({value.reason})")
        elif isinstance(value, BadLine):
            cut = "; the last line has no line end, so the file looks cut off" \
                if value.cut_off else ""
            value = ValueError(f"invalid JSON ({value.reason}){cut}")
        yield lineno, value


def _json_rows(path: Path):
    """Yield (line_number, row) for a .json file: a JSON array of conversation objects (each
    numbered by the line it starts on), a single conversation object, or JSON lines."""
    with open_bytes(path) as f:
        raw = f.read()
    _refuse_binary(path, raw[:8192])
    where = f"data.path={str(path)!r}"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UserError(f"{where} is not UTF-8 text (line {line}: {err.reason}). Save the file "
                        "as UTF-8 JSON.") from None
    pos = len(text) - len(text.lstrip())
    if pos == len(text):
        raise UserError(f"{where} is empty. Point it at a JSON array of conversations or a "
                        "JSON-lines file.")
    if text[pos] != "[":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            if text[pos] == "{":  # most likely JSON lines in a .json file
                yield from _read_jsonl(path)
                return
            raise UserError(f"{where} is not valid JSON: line {err.lineno} column {err.colno}: "
                            f"{err.msg}. Use a JSON array of conversations or a JSON-lines "
                            "file.") from None
        if isinstance(value, dict):
            yield 1 + text.count("\n", 0, pos), value
            return
        kind = "null" if value is None else f"a JSON {type(value).__name__}"
        raise UserError(f"{where} holds {kind}, not conversations. Use a JSON array of "
                        "conversation objects, or a JSON-lines file with one per line.")
    decoder, line, last, n = json.JSONDecoder(), 1, 0, len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def cut(i: int, what: str) -> UserError:
        lineno = text.count("\n", 0, i) + 1
        return UserError(f"{where} is cut off or corrupt at line {lineno}: {what}. Fix or "
                         "re-export the file (a JSON array of conversation objects).")

    pos = skip(pos + 1)
    if pos < n and text[pos] == "]":
        pos = skip(pos + 1)
    else:
        while True:
            if pos >= n:
                raise cut(pos, "the file ends inside the array (no closing ']')")
            try:
                row, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise UserError(f"{where} is cut off or corrupt at line {err.lineno} column "
                                f"{err.colno}: {err.msg}. Fix or re-export the file (a JSON "
                                "array of conversation objects).") from None
            line += text.count("\n", last, pos)
            last = pos
            yield line, row
            pos = skip(end)
            if pos < n and text[pos] == ",":
                pos = skip(pos + 1)
            elif pos < n and text[pos] == "]":
                pos = skip(pos + 1)
                break
            elif pos >= n:
                raise cut(pos, "the file ends inside the array (no closing ']')")
            else:
                raise cut(pos, f"expected ',' or ']' but found {text[pos]!r}")
    if pos < n:
        raise cut(pos, "there is more text after the closing ']'")


def _hub_rows(data_cfg):
    import datasets

    from specbench.target import hub_reachable

    if not hub_reachable():  # a cached copy still loads; anything else fails at once
        datasets.config.HF_HUB_OFFLINE = True
    try:
        ds = datasets.load_dataset(data_cfg.hub_id, data_cfg.hub_config, split=data_cfg.split,
                                   data_files=data_cfg.data_files)
    except Exception as err:  # hub, network and format errors come in many types
        raise UserError(
            f"Could not load dataset {data_cfg.hub_id!r} (split {data_cfg.split!r}) for "
            f"data={data_cfg.name} ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "Without Hugging Face Hub access, export the conversations to a local .jsonl and use "
            "data=jsonl data.path=/path/to/file.jsonl, or use the embedded default "
            "data=embedded-chat.") from err
    for i, row in enumerate(ds):
        yield i + 1, row


def _other_rows(path: Path):
    """Files that are neither .json nor .jsonl: whatever the datasets json loader reads."""
    import datasets

    try:
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
    except Exception as err:
        raise UserError(f"data.path={str(path)!r} could not be read as JSON ({err}). Use a "
                        "JSON-lines file with one conversation per line.") from err
    for i, row in enumerate(ds):
        yield i + 1, row


def _local_path(spec: str) -> tuple[Path, str]:
    """The file ``data.path`` names, and the source name recorded for it: ``embedded`` is the
    shipped chat set, ``embedded:NAME`` another shipped file, anything else a local path."""
    if spec == "embedded" or spec.startswith("embedded:"):
        name = spec.partition(":")[2] or "chat.jsonl"
        path, source = embedded_path(name), f"embedded:{name}"
    else:
        path = Path(spec).expanduser()
        source = str(path)
    if not path.is_file():
        raise UserError(f"data.path={spec!r} does not exist or is not a file. Point it at a "
                        ".jsonl (or .jsonl.gz) of conversations, or use data=embedded-chat.")
    return path, source


def load_conversations(data_cfg) -> ConversationSet:
    """Read, normalise and validate the conversations a ``DataConfig`` names."""
    mode = enum_value(data_cfg.bad_rows)
    if data_cfg.max_rows is not None and data_cfg.max_rows < 1:
        raise UserError(f"data.max_rows={data_cfg.max_rows} must be at least 1 (it keeps the first "
                        "N usable rows); use data.max_rows=null to read every row.")
    if data_cfg.path and data_cfg.hub_id:
        raise UserError(f"data={data_cfg.name} sets both data.path and data.hub_id; set one.")
    if data_cfg.path:
        path, source = _local_path(data_cfg.path)
        kind = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
        rows_iter = {"jsonl": _read_jsonl, "json": _json_rows}.get(kind, _other_rows)(path)
    elif data_cfg.hub_id:
        source, rows_iter = f"hub:{data_cfg.hub_id}", _hub_rows(data_cfg)
    else:
        raise UserError(f"data={data_cfg.name} names no data: set data.path (a local .jsonl) "
                        "or data.hub_id.")
    result = ConversationSet(rows=[], source=source)
    for lineno, raw in rows_iter:
        result.rows_read += 1
        try:
            if isinstance(raw, Exception):
                raise raw
            conv = normalise(raw)
        except ValueError as err:
            if mode == "error":
                raise UserError(f"Bad row at line {lineno} of {source}: {err}. Fix the row, or "
                                "set data.bad_rows=report to skip and count bad rows.") from None
            result.bad_rows.append({"line": lineno, "reason": str(err)})
            continue
        result.rows.append(conv)
        if data_cfg.max_rows is not None and len(result.rows) >= data_cfg.max_rows:
            break
    if not result.rows:
        if not result.bad_rows:
            raise UserError(f"{source} holds no conversations (it is empty). Check data.path / "
                            "data.hub_id.")
        first = result.bad_rows[0]
        raise UserError(f"No usable conversations in {source}: all {len(result.bad_rows)} rows "
                        f"are bad, the first at line {first['line']}: {first['reason']}. Each "
                        "row must be a JSON object with 'messages' (OpenAI form) or "
                        "'conversations' (ShareGPT form); a JSON-lines file holds one per line, "
                        "a .json file a JSON array of them. Check data.path / data.hub_id.")
    return result
