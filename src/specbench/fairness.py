"""Fair comparison: controlled variables, the fingerprint, and the automated checklist.

Controlled variables are every resolved setting outside ``algorithm`` that can change a result:
the ``model``, ``data``, ``trainer`` and ``decode`` sections (seed included), minus pure
bookkeeping keys (logging and checkpoint cadence, resume, ``decode.enabled``). Two runs may be ranked together only when their
fingerprints are equal: a short hash of the controlled variables plus the training data's
content hash.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from specbench.config import BOOKKEEPING_KEYS, CONTROLLED_SECTIONS, conf_dir
from specbench.errors import UserError
from specbench.io import stable_hash


def controlled_variables(cfg: DictConfig) -> dict:
    """The resolved controlled sections as plain data, bookkeeping keys removed."""
    out = {}
    for section in CONTROLLED_SECTIONS:
        values = OmegaConf.to_container(cfg[section], resolve=True, enum_to_str=True)
        for key in BOOKKEEPING_KEYS.get(section, ()):
            values.pop(key, None)
        out[section] = values
    return out


def algorithm_variables(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.algorithm, resolve=True, enum_to_str=True)


def fingerprint(cfg: DictConfig, dataset_sha256: str, world_size: int = 1) -> str:
    """Hash of the controlled variables, the data's content and the resolved global batch (so a
    1-GPU and a 4-GPU run agree only when their global batches do)."""
    accum = resolve_grad_accum(cfg.trainer, world_size)
    controlled = controlled_variables(cfg)
    # The decoding settings are hashed under their section's pre-rename key "eval" (issue 9
    # renamed the group to decode): runs recorded before the rename keep their fingerprints,
    # so they stay comparable with new runs (summary.json's "controlled" shows "decode").
    controlled["eval"] = controlled.pop("decode")
    payload = {"controlled": controlled, "dataset_sha256": dataset_sha256,
               "global_batch": global_batch(cfg.trainer.micro_batch_size, accum, world_size)}
    return stable_hash(payload)[:12]


def flatten(d: dict, prefix: str = "", sep: str = ".", lists: bool = False) -> dict:
    """Nested dicts to dotted keys; with ``lists``, numeric lists become key{sep}i entries."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + sep, sep, lists))
        elif lists and isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
            out.update({f"{key}{sep}{i}": x for i, x in enumerate(v)})
        else:
            out[key] = v
    return out


def parameter_tables(cfg: DictConfig, fp: str) -> str:
    """The 'parameter comparison table before training': controlled vs algorithm-specific."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buf = StringIO()
    console = Console(file=buf, width=100, force_terminal=False)
    t = Table(title=f"Controlled variables (fingerprint {fp})", title_justify="left")
    t.add_column("setting")
    t.add_column("value")
    for k, v in flatten(controlled_variables(cfg)).items():
        t.add_row(k, str(v))
    console.print(t)
    a = Table(title=f"Algorithm-specific ({cfg.algorithm.name})", title_justify="left")
    a.add_column("setting")
    a.add_column("value")
    for k, v in flatten(algorithm_variables(cfg), "algorithm.").items():
        a.add_row(k, str(v))
    console.print(a)
    return buf.getvalue()


def check_algorithm_file(path: Path) -> None:
    """An algorithm config file may set ``algorithm.*`` only: no package directive moving it
    elsewhere, and no defaults entry that overrides another group."""
    text = path.read_text()
    for line in text.splitlines():
        if line.startswith("# @package") and line.split()[-1] not in ("_group_", "algorithm"):
            raise UserError(f"{path} declares '{line.strip()}': an algorithm file may only set "
                            "algorithm.* keys (controlled variables belong to model/data/trainer).")
    data = yaml.safe_load(text) or {}
    for entry in data.get("defaults", []):
        ok = entry == "_self_" or (isinstance(entry, dict) and len(entry) == 1
                                   and next(iter(entry)) == "/schema/algorithm@_here_")
        if not ok:
            raise UserError(f"{path} has defaults entry {entry!r}: an algorithm file may not "
                            "select or override other config groups.")


def check_algorithm_choice(choice: str | None) -> None:
    if choice:
        path = conf_dir() / "algorithm" / f"{choice}.yaml"
        if path.is_file():
            check_algorithm_file(path)


def global_batch(micro: int, accum: int, world: int) -> int:
    return micro * accum * world


def resolve_grad_accum(trainer_cfg, world: int) -> int:
    """``trainer.global_batch_size`` (when set) fixes the global batch across world sizes."""
    if trainer_cfg.global_batch_size is None:
        return trainer_cfg.grad_accum
    per_step = trainer_cfg.micro_batch_size * world
    if trainer_cfg.global_batch_size % per_step:
        raise UserError(
            f"trainer.global_batch_size={trainer_cfg.global_batch_size} is not divisible by "
            f"micro batch x world size = {trainer_cfg.micro_batch_size} x {world}. Change "
            "trainer.global_batch_size or trainer.micro_batch_size.")
    return trainer_cfg.global_batch_size // per_step


def expected_steps(rows: int, global_bs: int, epochs: int, max_steps: int | None) -> int:
    steps = math.ceil(rows / global_bs) * epochs
    return min(steps, max_steps) if max_steps is not None else steps
