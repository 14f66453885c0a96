"""The target-feature cache ("offline" mode): run the frozen target once, train many drafts.

With ``cache.enabled=true`` the trainer does not run the target on every micro batch. Before
training it looks for a complete cache of this run's target features and builds one if there is
none: the target runs once over every training and held-out eval row, and the hidden states of
the stored layers are written as safetensors shards. Each micro batch then reads its rows back
(same batches, order, right padding and masks as online: only where the tensors come from
changes). Padding positions hold zeros instead of the target's outputs at pad tokens; no loss
reads them (every loss is masked to real tokens and the draft attention is causal).

What is stored, per token, is one ``[L, H]`` row: the outputs of the stored decoder layers
(ascending) and, last, the final normed hidden state, in the target's dtype (bf16 for bf16
targets, fp32 for fp32 targets, so that cached fp32 training equals online training). Rows of a
split are concatenated (``hidden`` [T, L, H]) with ``offsets`` [n + 1] and the dataset row ids
``row_ids`` [n]. Nothing vocabulary-sized is stored: the algorithms compute target logits from
the final hidden state through the frozen target lm_head inside their loss, exactly as online.

Which layers: with ``cache.layers=union`` (default) the build stores the union of what every
registered algorithm reads with its *default* settings on this target (Medusa: the final hidden
state; EAGLE-3: its three default aux layers and the final hidden state) plus what this run's
algorithm reads, so ``-m algorithm=medusa,eagle3`` builds one cache and both runs use it. With
``cache.layers=needed`` only this run's layers are stored. Any complete cache of the same target
and data whose layers cover what the run needs is reused.

Key: a hash of the model identity (source, hub id / path / revision, dtype, architecture as
loaded, attention implementation, the seed for random weights, and a probe of the weights), the
data (content sha256, the train/eval split and a sha256 of every tokenised row, which also covers
the tokenizer, chat template and ``trainer.max_length``), ``trainer.max_length``, torch and
transformers versions, and the stored layer set. The cache is not a controlled variable: it does
not enter the run's fingerprint; ``summary.json`` records it under ``feature_cache``.

Layout: ``<cache.dir or ~/.cache/specbench/features>/<key>/`` holding ``train-00000.safetensors``
.. ``eval-00000.safetensors`` and ``manifest.json``, written last. A build writes into a staging
directory beside it (``checkpoint.staged_dir``) and renames it into place, so an interrupted
build never looks complete; builds of one key are serialised by a lock file, the builder removes
staging directories left by killed builds, and a process that waited on the lock reuses the
cache the other one finished.

Integrity: the manifest records each shard's size and sha256. The first time a process opens a
cache it re-hashes every shard; a shard that is missing, truncated or altered stops the run with
a message naming the shard and the cache directory (delete that directory so that it is rebuilt,
or set ``cache.enabled=false``), instead of training on garbage. Caches written before checksums
existed (manifest format 1) are not reused: their key differs, so a fresh cache is built beside
them and a note says how much space the old ones take. Before a build the estimated size is
checked against ``cache.max_bytes`` and the free disk space; a build that fails to write (disk
full) removes its staging directory and says how much space it needs.

``python -m specbench.feature_cache [overrides]`` prints the stored layers and bytes per token
for a config (``--count-tokens`` also loads the data and estimates the total size).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specbench.checkpoint import safetensors_bytes, staged_dir
from specbench.config import enum_value
from specbench.errors import UserError
from specbench.io import cache_root, file_lock, file_sha256, stable_hash, write_json
from specbench.log import get_logger
from specbench.target import TORCH_DTYPES, Features, FeatureSpec, arch_of

log = get_logger(__name__)

FORMAT_VERSION = 2  # 2: every shard carries its sha256
FINAL = "final"  # the final normed hidden state, stored after the decoder-layer outputs
MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
BUILDS = {"count": 0}  # builds done in this process (tests assert reuse with it)
_VERIFIED: set = set()  # _stamp()s of the shards this process has hashed (or just written)


def human_size(n: float) -> str:
    """Bytes as MB below 1 GB, else GB, with enough digits never to read as zero."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.3g} MB" if n >= 1000 else f"{int(n)} bytes"


def progress_enabled(cfg, verbose: bool) -> bool | None:
    """tqdm's ``disable`` value: off when not verbose or trainer.progress=false; else None,
    which tqdm reads as "on when the output is a terminal"."""
    trainer = getattr(cfg, "trainer", None)
    return True if not verbose or not getattr(trainer, "progress", True) else None


# ----------------------------------------------------------------------------------- layers


def _order(entries) -> list:
    """Stored-layer entries in storage order: decoder-layer indices ascending, then FINAL."""
    ints = sorted({int(e) for e in entries if e != FINAL})
    return ints + ([FINAL] if FINAL in entries else [])


def spec_entries(spec: FeatureSpec) -> list:
    """The stored-layer entries a FeatureSpec reads."""
    return _order(set(spec.layers) | ({FINAL} if spec.final_hidden else set()))


def stored_layers(cache_cfg, spec: FeatureSpec, target_config) -> list:
    """The layers a build stores: this run's, plus (``layers=union``) every registered
    algorithm's default layers on this target."""
    entries = set(spec_entries(spec))
    if enum_value(getattr(cache_cfg, "layers", "union")) == "union":
        from omegaconf import OmegaConf

        from specbench.algorithms import REGISTRY

        for cls in REGISTRY.values():
            try:
                default = OmegaConf.structured(cls.config_class)
                entries |= set(spec_entries(cls.feature_spec(default, target_config)))
            except Exception:  # noqa: BLE001 - defaults that do not fit this target add nothing
                continue
    return _order(entries)


def feature_bytes_per_token(n_layers: int, hidden: int, dtype: torch.dtype) -> int:
    return n_layers * hidden * torch.empty((), dtype=dtype).element_size()


# -------------------------------------------------------------------------------------- key


def key_digest(obj) -> str:
    """The hash cache keys are made of (json's default separators: the keys of caches built
    before io.stable_hash keep their values)."""
    return stable_hash(obj, compact=False)


def weights_probe(model: torch.nn.Module) -> str:
    """A cheap fingerprint of the weights: every parameter's name, shape, dtype and its first
    and last 64 values (a different checkpoint at the same path changes it)."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            sample = torch.cat([flat[:64], flat[-64:]]).float().cpu()
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
            h.update(sample.numpy().tobytes())
    return h.hexdigest()


def model_identity(model_cfg, target, seed: int) -> dict:
    source = enum_value(model_cfg.source)
    ident = {"source": source, "dtype": enum_value(model_cfg.dtype),
             "arch": arch_of(target.config),
             "attn_implementation": getattr(target.config, "_attn_implementation", None),
             "weights": weights_probe(target.model)}
    if source == "hub":
        ident.update(hub_id=model_cfg.hub_id, revision=model_cfg.revision)
    elif source == "local":
        ident["path"] = str(Path(model_cfg.path).expanduser().resolve())
    elif source == "embedded":
        from specbench.embedded import CACHE_NAME

        ident["embedded"] = CACHE_NAME
    elif source == "random":
        ident["seed"] = seed
    return ident


def rows_digest(dataset) -> str:
    """sha256 of every tokenised row of both splits (ids and split membership, in order)."""
    h = hashlib.sha256()
    for split in SPLITS:
        h.update(f"[{split}]".encode())
        for row in getattr(dataset, split):
            h.update(len(row.input_ids).to_bytes(4, "little"))
            h.update(torch.tensor(row.input_ids, dtype=torch.int64).numpy().tobytes())
    return h.hexdigest()


def key_parts(cfg, target, dataset) -> dict:
    """Everything the stored features depend on, except the layer set."""
    import transformers

    return {
        "format": FORMAT_VERSION,
        "model": model_identity(cfg.model, target, cfg.trainer.seed),
        "data": {"sha256": dataset.conversations.sha256, "max_rows": cfg.data.max_rows,
                 "eval_rows": cfg.data.eval_rows, "train_rows": len(dataset.train),
                 "held_out_rows": len(dataset.eval), "tokens_sha256": rows_digest(dataset)},
        "max_length": int(cfg.trainer.max_length),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def cache_key(parts: dict, layers: list) -> str:
    return key_digest({"base": parts, "layers": layers})[:16]


# ----------------------------------------------------------------------------------- reading


@dataclass
class FeatureCache:
    """A complete cache on disk; ``features`` assembles one micro batch of stored rows."""

    path: Path
    manifest: dict
    built_now: bool = False
    prepare_time_s: float = 0.0
    _handles: dict = field(default_factory=dict, repr=False)
    _index: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: Path, disable_progress: bool | None = True, **kw) -> FeatureCache:
        """Open a complete cache; every shard's size and sha256 are checked once per process
        (a damaged shard is a UserError naming it)."""
        manifest = read_manifest(path)
        if manifest is None:
            refuse_damaged(Path(path))
        verify_shards(Path(path), manifest, disable_progress)
        fc = cls(Path(path), manifest, **kw)
        from safetensors import safe_open

        for s, shard in enumerate(manifest["shards"]):
            with safe_open(str(fc.path / shard["file"]), "pt") as f:
                row_ids, offsets = f.get_tensor("row_ids"), f.get_tensor("offsets")
            idx = fc._index.setdefault(shard["split"], {})
            for j, r in enumerate(row_ids.tolist()):
                idx[r] = (s, int(offsets[j]), int(offsets[j + 1]))
        return fc

    @property
    def layers(self) -> list:
        return list(self.manifest["layers"])

    @property
    def dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.manifest["dtype"]]

    def _handle(self, s: int):
        if s not in self._handles:
            from safetensors import safe_open

            self._handles[s] = safe_open(str(self.path / self.manifest["shards"][s]["file"]),
                                         "pt")
        return self._handles[s]

    def batch_features(self, split: str, rows: list[int], batch: dict,
                       spec: FeatureSpec) -> Features:
        """The ``FeatureSource`` interface (shared with ``target.Target``): the stored
        features of dataset rows ``rows`` of ``split``, shaped like the collated ``batch``."""
        ids = batch["input_ids"]
        return self.features(split, rows, ids.shape[1], spec, ids.device)

    def features(self, split: str, rows: list[int], width: int, spec: FeatureSpec,
                 device=None) -> Features:
        """The Features ``target.features`` would return for the right-padded batch of dataset
        rows ``rows`` of ``split`` padded to ``width`` (pad positions are zeros)."""
        want = spec_entries(spec)
        pos = [self.layers.index(e) for e in want]
        out = torch.zeros((len(want), len(rows), width, self.manifest["hidden_size"]),
                          dtype=self.dtype)
        sel = torch.tensor(pos)
        for b, r in enumerate(rows):
            s, start, end = self._index[split][r]
            if end - start > width:
                raise UserError(f"Cached row {split}[{r}] has {end - start} tokens, the batch "
                                f"only {width}: the feature cache {self.path} does not match "
                                "the data. Delete that directory so that it is rebuilt, or set "
                                "cache.enabled=false.")
            block = self._handle(s).get_slice("hidden")[start:end]  # [n, L, H]
            out[:, b, : end - start] = block.index_select(1, sel).transpose(0, 1)
        if device is not None:
            out = out.to(device)
        tensors = dict(zip(want, out))
        return Features(final_hidden=tensors.get(FINAL) if spec.final_hidden else None,
                        layers={i: tensors[i] for i in spec.layers})

    def check_rows(self, dataset) -> None:
        """Every dataset row is cached with its length (cheap; catches a mismatched cache)."""
        for split in SPLITS:
            rows = getattr(dataset, split)
            idx = self._index.get(split, {})
            if len(idx) != len(rows) or any(
                    r not in idx or idx[r][2] - idx[r][1] != len(row.input_ids)
                    for r, row in enumerate(rows)):
                raise UserError(f"The feature cache {self.path} does not match the {split} "
                                "rows of this dataset. Delete that directory so that it is "
                                "rebuilt, or set cache.enabled=false.")

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def info(self) -> dict:
        m = self.manifest
        size = self.size_on_disk()
        return {"enabled": True, "used": True, "built_now": self.built_now, "key": m["key"],
                "path": _home_relative(self.path), "bytes": size, "tokens": m["tokens"],
                "bytes_per_token": size / max(1, m["tokens"]),
                "feature_bytes_per_token": m["feature_bytes_per_token"],
                "layers": m["layers"], "dtype": m["dtype"], "rows": m["rows"],
                "build_time_s": m["build_time_s"],
                "build_time_this_run_s": m["build_time_s"] if self.built_now else 0.0,
                "prepare_time_s": self.prepare_time_s}


def _home_relative(path: Path) -> str:
    """The path as recorded in summary.json: ``~/...`` under the home directory, so that run
    records carry no user-specific absolute path."""
    try:
        return "~/" + Path(path).resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def _load_manifest(path: Path) -> dict | None:
    try:
        m = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _stamp(p: Path, sha: str) -> tuple:
    """What identifies a hashed file on disk (survives the rename from staging into place)."""
    st = p.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha


def shard_problem(path: Path, shard: dict, check_sha: bool = False) -> str | None:
    """Why one shard of a cache cannot be used (missing, wrong size, wrong sha256), or None."""
    p = Path(path) / shard["file"]
    if not p.is_file():
        return "is missing"
    size = p.stat().st_size
    if size != shard["bytes"]:
        return (f"is {size} bytes, the manifest says {shard['bytes']} "
                f"({'truncated' if size < shard['bytes'] else 'altered'})")
    if check_sha:
        stamp = _stamp(p, shard["sha256"])
        if stamp not in _VERIFIED:
            if file_sha256(p) != shard["sha256"]:
                return "does not match its sha256 checksum in the manifest (corrupted on disk)"
            _VERIFIED.add(stamp)
    return None


def read_manifest(path: Path) -> dict | None:
    """The manifest of a complete cache directory, or None (missing, unreadable, other format
    version, or a shard missing / of the wrong size)."""
    m = _load_manifest(path)
    if m is None or m.get("format") != FORMAT_VERSION:
        return None
    shards = m.get("shards", [])
    if not all(isinstance(s, dict) and {"file", "bytes", "sha256"} <= set(s) for s in shards):
        return None
    if any(shard_problem(path, shard) for shard in shards):
        return None
    return m


def _damaged(path: Path, what: str) -> UserError:
    return UserError(
        f"The target-feature cache in {path} is damaged: {what}. Training on it would use wrong "
        f"features (NaN or garbage losses). Delete the directory {path} so that the next run "
        "rebuilds it, or set cache.enabled=false to run the target on every batch instead "
        "(same results).")


def refuse_damaged(path: Path) -> None:
    """Raise the UserError that explains why the cache directory ``path`` is unusable."""
    m = _load_manifest(path)
    if m is None:
        raise _damaged(path, f"it has no readable {MANIFEST}")
    if m.get("format") != FORMAT_VERSION:
        raise _damaged(path, f"its {MANIFEST} has format {m.get('format')!r}, this specbench "
                             f"writes format {FORMAT_VERSION}")
    for shard in m.get("shards", []):
        problem = shard_problem(path, shard) if isinstance(shard, dict) and \
            {"file", "bytes"} <= set(shard) else "has no name or size in the manifest"
        if problem:
            raise _damaged(path, f"shard {shard.get('file', '?')} {problem}")
    raise _damaged(path, f"its {MANIFEST} is incomplete")


def verify_shards(path: Path, manifest: dict, disable_progress: bool | None = True) -> None:
    """Re-hash every shard not yet verified by this process; a mismatch is a UserError."""
    from tqdm import tqdm

    shards = manifest["shards"]
    with tqdm(total=sum(s["bytes"] for s in shards), unit="B", unit_scale=True,
              desc="verify feature cache", disable=disable_progress, leave=False) as bar:
        for shard in shards:
            problem = shard_problem(path, shard, check_sha=True)
            if problem:
                raise _damaged(path, f"shard {shard['file']} {problem}")
            bar.update(shard["bytes"])


def find_cache(root: Path, base_key: str, spec: FeatureSpec) -> Path | None:
    """The smallest complete cache in ``root`` with this base key whose layers cover ``spec``."""
    if not root.is_dir():
        return None
    need = set(spec_entries(spec))
    best = None
    for d in root.iterdir():
        if d.name.startswith(".") or not d.is_dir():
            continue
        m = read_manifest(d)
        if m and m.get("base_key") == base_key and need <= set(m["layers"]):
            if best is None or len(m["layers"]) < best[0]:
                best = (len(m["layers"]), d)
    return best[1] if best else None


# ----------------------------------------------------------------------------------- building


def features_root(cache_cfg) -> Path:
    """``cache.dir``, else ``<specbench cache>/features``."""
    if getattr(cache_cfg, "dir", None):
        return Path(cache_cfg.dir).expanduser()
    return cache_root() / "features"


def estimate(dataset, n_layers: int, hidden: int, dtype: torch.dtype) -> tuple[int, int]:
    """(tokens, bytes) of a cache of both splits: tokens x layers x hidden x dtype bytes, plus
    16 bytes per row of offsets and row ids."""
    rows = len(dataset.train) + len(dataset.eval)
    tokens = sum(len(r.input_ids) for split in SPLITS for r in getattr(dataset, split))
    return tokens, tokens * feature_bytes_per_token(n_layers, hidden, dtype) + 16 * rows


def free_bytes(root: Path) -> int:
    probe = root
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_size(need: int, tokens: int, layers: list, hidden: int, dtype, cache_cfg,
               root: Path) -> None:
    free = free_bytes(root)
    limit = int(cache_cfg.max_bytes)
    if need <= limit and need <= free:
        return
    why = (f"more than cache.max_bytes={limit} ({human_size(limit)})" if need > limit
           else f"more than the {human_size(free)} free there")
    raise UserError(
        f"The target-feature cache for this run would take about {human_size(need)} "
        f"({tokens} tokens x {len(layers)} layers x {hidden} hidden x "
        f"{torch.empty((), dtype=dtype).element_size()} bytes) in cache.dir={str(root)!r}, "
        f"{why}. Raise cache.max_bytes, point cache.dir at a disk with room, store only this "
        "algorithm's layers with cache.layers=needed, lower trainer.max_length or data.max_rows, "
        "or set cache.enabled=false to run the target on every batch instead (same results).")


def _save_shard(path: Path, tensors: dict, metadata: dict) -> int:
    """Write one shard: the same tensors give the same bytes in every process (the header's
    keys sorted), so caches built by different processes are identical file for file."""
    with open(path, "wb") as f:  # a full disk raises OSError (ENOSPC) here
        f.write(safetensors_bytes(tensors, metadata))
        f.flush()
        os.fsync(f.fileno())
    return path.stat().st_size


class _ShardWriter:
    def __init__(self, where: Path, split: str, shard_bytes: int, meta: dict):
        self.where, self.split, self.limit, self.meta = where, split, max(1, shard_bytes), meta
        self.rows: list[int] = []
        self.blocks: list[torch.Tensor] = []
        self.bytes = 0
        self.shards: list[dict] = []

    def add(self, row: int, block: torch.Tensor) -> None:
        self.rows.append(row)
        self.blocks.append(block)
        self.bytes += block.numel() * block.element_size()
        if self.bytes >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        name = f"{self.split}-{len(self.shards):05d}.safetensors"
        lengths = torch.tensor([0] + [b.shape[0] for b in self.blocks], dtype=torch.int64)
        tensors = {"hidden": torch.cat(self.blocks).contiguous(),
                   "offsets": lengths.cumsum(0), "row_ids": torch.tensor(self.rows)}
        size = _save_shard(self.where / name, tensors, self.meta)
        sha = file_sha256(self.where / name)
        _VERIFIED.add(_stamp(self.where / name, sha))  # hashed from disk just now
        self.shards.append({"file": name, "split": self.split, "rows": len(self.rows),
                            "tokens": int(lengths.sum()), "bytes": size, "sha256": sha})
        self.rows, self.blocks, self.bytes = [], [], 0


@torch.no_grad()
def _build(staging: Path, target, dataset, layers: list, cache_cfg, batch_size: int,
           manifest: dict, verbose: bool, disable_progress: bool | None = True) -> dict:
    spec = FeatureSpec(layers=tuple(e for e in layers if e != FINAL),
                       final_hidden=FINAL in layers)
    device, pad_id = target.device, target.tokenizer.pad_token_id
    from tqdm import tqdm

    from specbench.data import collate

    shards = []
    t0 = time.time()
    bar = tqdm(total=sum(len(getattr(dataset, s)) for s in SPLITS), unit="row",
               desc="build feature cache", disable=disable_progress)
    for split in SPLITS:
        rows = getattr(dataset, split)
        writer = _ShardWriter(staging, split, int(cache_cfg.shard_bytes),
                              {"key": manifest["key"], "split": split})
        # Longest first (an out-of-memory shows at once); shorter rows pad less together.
        order = sorted(range(len(rows)), key=lambda i: (-len(rows[i].input_ids), i))
        for c in range(0, len(order), batch_size):
            chunk = order[c: c + batch_size]
            batch = collate([rows[i] for i in chunk], pad_id)
            feats = target.features(batch["input_ids"].to(device),
                                    batch["attention_mask"].to(device), spec)
            stacked = torch.stack([feats.layers[e] if e != FINAL else feats.final_hidden
                                   for e in layers], dim=2).cpu()  # [B, W, L, H]
            if str(stacked.dtype).replace("torch.", "") != manifest["dtype"]:
                raise RuntimeError(f"target features are {stacked.dtype}, expected "
                                   f"{manifest['dtype']}")
            for b, i in enumerate(chunk):
                writer.add(i, stacked[b, : len(rows[i].input_ids)].clone())
            bar.update(len(chunk))
        writer.flush()
        shards += writer.shards
    bar.close()
    manifest = {**manifest, "shards": shards, "build_time_s": time.time() - t0,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(staging / MANIFEST, manifest)  # last: only a whole cache has a manifest
    if verbose:
        log.info(f"built the feature cache in {manifest['build_time_s']:.1f} s")
    return manifest


def _old_format_note(root: Path) -> str | None:
    """A note about caches of an older format in ``root`` (never reused; they take space)."""
    old, size = 0, 0
    for d in root.iterdir() if root.is_dir() else []:
        m = _load_manifest(d) if d.is_dir() and not d.name.startswith(".") else None
        if m is not None and m.get("format") != FORMAT_VERSION:
            old += 1
            size += sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    if not old:
        return None
    return (f"[specbench] note: {old} feature cache(s) in {root} were written by an older "
            f"specbench (no checksums) and are not reused; delete them to free {human_size(size)}")


def prepare(cfg, target, dataset, spec: FeatureSpec, verbose: bool = True) -> FeatureCache:
    """Find a complete cache covering ``spec`` for this target and data, or build one; return
    it open for reading (every shard checksum-verified once per process)."""
    t0 = time.time()
    cache_cfg = cfg.cache
    root = features_root(cache_cfg)
    parts = key_parts(cfg, target, dataset)
    base_key = key_digest(parts)[:16]
    layers = stored_layers(cache_cfg, spec, target.config)
    key = cache_key(parts, layers)
    no_bar = progress_enabled(cfg, verbose)
    built = False
    path = find_cache(root, base_key, spec)
    if path is None:
        hidden = target.config.hidden_size
        dtype = next(target.model.parameters()).dtype
        tokens, need = estimate(dataset, len(layers), hidden, dtype)
        check_size(need, tokens, layers, hidden, dtype, cache_cfg, root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"Cannot create the feature cache directory {root} ({err}). Set "
                            "cache.dir to a writable directory, or cache.enabled=false.") from err
        waiting = f"[specbench] waiting for another process building feature cache {key}"
        with file_lock(root / f".lock-{key}", waiting if verbose else None):
            path = find_cache(root, base_key, spec)  # another process may have finished one
            if path is None:
                path = root / key
                if path.exists():  # this key's directory, but not a complete cache: say why
                    refuse_damaged(path)
                for stale in root.glob(f".tmp-{key}-*"):  # left by a killed build of this key
                    shutil.rmtree(stale, ignore_errors=True)
                note = _old_format_note(root) if verbose else None
                if note:
                    log.info(note)
                if verbose:
                    log.info(f"building the target-feature cache {key}: "
                             f"{tokens} tokens x {len(layers)} layers {layers} x {hidden} "
                             f"({str(dtype).replace('torch.', '')}), about {human_size(need)}")
                manifest = {
                    "format": FORMAT_VERSION, "key": key, "base_key": base_key,
                    "layers": layers, "hidden_size": hidden,
                    "dtype": str(dtype).replace("torch.", ""), "tokens": tokens,
                    "rows": {s: len(getattr(dataset, s)) for s in SPLITS},
                    "feature_bytes_per_token": feature_bytes_per_token(len(layers), hidden,
                                                                       dtype),
                    "key_parts": parts}
                try:
                    with staged_dir(path) as staging:
                        _build(staging, target, dataset, layers, cache_cfg,
                               int(cfg.trainer.micro_batch_size), manifest, verbose, no_bar)
                except OSError as err:  # staged_dir has removed the partial build
                    space = (f"; it needs about {human_size(need)} and "
                             f"{human_size(free_bytes(root))} is free now"
                             if err.errno in (errno.ENOSPC, errno.EDQUOT) else "")
                    raise UserError(
                        f"Writing the target-feature cache {key} in cache.dir={str(root)!r} "
                        f"failed ({err.strerror or err}){space}. The partial cache was removed. "
                        "Free disk space or point cache.dir at a disk with room, store only "
                        "this algorithm's layers with cache.layers=needed, or set "
                        "cache.enabled=false to run the target on every batch instead.") from err
                BUILDS["count"] += 1
                built = True
    fc = FeatureCache.open(path, disable_progress=no_bar, built_now=built)
    fc.check_rows(dataset)
    fc.prepare_time_s = time.time() - t0
    if verbose:
        info = fc.info()
        log.info(f"feature cache {'built' if built else 'reused'}: {path} "
                 f"({human_size(info['bytes'])}, {info['bytes_per_token']:.0f} bytes/token, "
                 f"layers {fc.layers}, {fc.manifest['dtype']})")
    return fc


# ------------------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    """Print the stored layers and bytes/token for a config, analytically (no model load);
    ``--count-tokens`` loads the tokenizer and data to estimate the whole cache."""
    from specbench.algorithms import get_algorithm
    from specbench.config import compose_checked
    from specbench.target import config_from_arch

    parser = argparse.ArgumentParser(
        prog="python -m specbench.feature_cache",
        description="Print which target layers a feature cache stores for a config and its "
                    "bytes per token (no model load).",
        epilog="Example: python -m specbench.feature_cache model=smollm2-135m algorithm=eagle3 "
               "cache.layers=needed --count-tokens")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m specbench")
    parser.add_argument("--count-tokens", action="store_true",
                        help="also load the tokenizer and data and estimate the cache's size")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        # Hydra's errors, unknown keys (+trainer.typo=1) and out-of-range values as messages
        cfg = compose_checked(args.overrides, "python -m specbench.feature_cache")
        tc = config_from_arch(cfg.model.arch)
        spec = get_algorithm(cfg.algorithm.name).feature_spec(cfg.algorithm, tc)
        layers = stored_layers(cfg.cache, spec, tc)
        dtype = TORCH_DTYPES[enum_value(cfg.model.dtype)]
        bpt = feature_bytes_per_token(len(layers), tc.hidden_size, dtype)
        own = feature_bytes_per_token(len(spec_entries(spec)), tc.hidden_size, dtype)
        print(f"model={cfg.model.name} hidden={tc.hidden_size} layers={tc.num_hidden_layers} "
              f"dtype={enum_value(cfg.model.dtype)}")
        print(f"stored (cache.layers={enum_value(cfg.cache.layers)}): {layers} -> {bpt} bytes/"
              f"token; {cfg.algorithm.name} alone: {spec_entries(spec)} -> {own} bytes/token")
        if args.count_tokens:
            from specbench.data import build_dataset
            from specbench.target import load_target

            target = load_target(cfg.model, seed=cfg.trainer.seed)
            data = build_dataset(cfg.data, target.tokenizer, cfg.trainer.max_length,
                                 progress=bool(cfg.trainer.progress))
            tokens, need = estimate(data, len(layers), tc.hidden_size, dtype)
            print(f"data={cfg.data.name} max_length={cfg.trainer.max_length}: {tokens} tokens "
                  f"(train + eval rows) -> about {human_size(need)}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
