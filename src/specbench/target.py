"""The frozen target model: loading, architecture checks and hidden-state capture.

``load_target`` turns a ``ModelConfig`` into a ``Target`` (model + tokenizer), from the embedded
SmolLM2 copy, a local directory, the Hugging Face Hub, or random weights for tests. The target is
never trained; ``Target.features`` runs it once per batch and returns exactly the tensors a draft
algorithm declared in its ``FeatureSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from specbench.config import enum_value
from specbench.errors import UserError

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class FeatureSpec:
    """What an algorithm needs from the target.

    ``layers``: indices of decoder layers whose *outputs* are captured (layer i's output is
    ``output_hidden_states[i + 1]`` in transformers' numbering). ``final_hidden``: the last hidden
    state after the final norm (what the target lm_head reads).
    """

    layers: tuple[int, ...] = ()
    final_hidden: bool = True


class FeatureSource(Protocol):
    """Where the trainer gets a micro batch's target features: the live ``Target`` or the
    ``FeatureCache`` built from it; both return the same tensors."""

    def batch_features(self, split: str, rows: list[int], batch: dict,
                       spec: FeatureSpec) -> Features: ...


@dataclass
class Features:
    final_hidden: torch.Tensor | None  # [B, L, H], after the final norm
    layers: dict[int, torch.Tensor] = field(default_factory=dict)  # layer index -> [B, L, H]

    def to(self, dtype: torch.dtype) -> Features:
        return Features(None if self.final_hidden is None else self.final_hidden.to(dtype),
                        {i: t.to(dtype) for i, t in self.layers.items()})


class Target:
    """A frozen causal LM plus its tokenizer."""

    def __init__(self, model: nn.Module, tokenizer, name: str):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name

    @property
    def config(self):
        return self.model.config

    @property
    def lm_head(self) -> nn.Linear:
        return self.model.get_output_embeddings()

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def decoder_layers(self) -> nn.ModuleList:
        return self.model.model.layers

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def batch_features(self, split: str, rows: list[int], batch: dict,
                       spec: FeatureSpec) -> Features:
        """The ``FeatureSource`` interface (shared with ``feature_cache.FeatureCache``): the
        features of a collated micro batch, here by running the target on it."""
        return self.features(batch["input_ids"], batch["attention_mask"], spec)

    @torch.no_grad()
    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 spec: FeatureSpec) -> Features:
        captured: dict[int, torch.Tensor] = {}
        hooks = []
        n = len(self.decoder_layers)
        for i in spec.layers:
            if not 0 <= i < n:
                raise UserError(f"Feature layer {i} does not exist: the target has {n} decoder "
                                f"layers (0..{n - 1}). Change the algorithm's layer setting.")

            def hook(_module, _inputs, output, i=i):
                captured[i] = output[0] if isinstance(output, tuple) else output

            hooks.append(self.decoder_layers[i].register_forward_hook(hook))
        try:
            out = self.model.model(input_ids=input_ids, attention_mask=attention_mask,
                                   use_cache=False)
        finally:
            for h in hooks:
                h.remove()
        return Features(final_hidden=out.last_hidden_state if spec.final_hidden else None,
                        layers=captured)


def forward_flops_per_token(config, context: float) -> float:
    """Analytic forward FLOPs of the target body per token (no lm_head): 2 x the non-embedding
    matmul parameters, plus attention scores and values over ``context`` keys."""
    h, n = config.hidden_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    attn_proj = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * config.intermediate_size
    return n * (2 * (attn_proj + mlp) + 2 * 2 * heads * head_dim * context)


# --------------------------------------------------------------------------- tokenizers for tests

LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
QWEN25_STYLE_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|begin_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"]


def _byte_to_char() -> dict[int, str]:
    """The GPT-2 byte-level alphabet: printable bytes map to themselves, the rest to 256+."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def byte_level_tokenizer(style: str = "qwen2"):
    """A 263-token byte-level tokenizer with a Llama-3- or Qwen2.5-style chat template.

    Built in code, so tests and random-weight models need no download. Ids 0..255 are bytes,
    then the special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    byte_chars = _byte_to_char()
    vocab = {byte_chars[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    if style == "llama":
        eos, template = "<|eot_id|>", LLAMA3_STYLE_TEMPLATE
    elif style == "qwen2":
        eos, template = "<|im_end|>", QWEN25_STYLE_TEMPLATE
    else:
        raise ValueError(f"unknown chat template style {style!r}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token=eos,
        pad_token="<|endoftext|>", chat_template=template,
    )


# --------------------------------------------------------------------------------------- loading


def config_from_arch(arch):
    """A transformers config built from ``model.arch`` facts alone (no download)."""
    from transformers import LlamaConfig, Qwen2Config

    classes = {"llama": LlamaConfig, "qwen2": Qwen2Config}
    if arch.model_type not in classes:
        raise UserError(f"model.arch.model_type={arch.model_type!r} is not supported here; "
                        f"choose one of {sorted(classes)}.")
    return classes[arch.model_type](
        hidden_size=arch.hidden_size, num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads, num_key_value_heads=arch.num_key_value_heads,
        intermediate_size=arch.intermediate_size, vocab_size=arch.vocab_size,
        rope_theta=arch.rope_theta, tie_word_embeddings=arch.tie_word_embeddings,
        max_position_embeddings=arch.max_position_embeddings, rms_norm_eps=arch.rms_norm_eps,
        pad_token_id=256,
    )


def _random_model(arch, dtype: torch.dtype, seed: int):
    from transformers import AutoModelForCausalLM

    config = config_from_arch(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.to(dtype), byte_level_tokenizer(arch.model_type)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "spiece.model")


def _local_error(model_cfg, err: Exception | None, what: str) -> UserError:
    detail = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err and str(err) \
        else ""
    return UserError(
        f"Could not load the target model from model.path={model_cfg.path!r} "
        f"(model={model_cfg.name}): {what}{detail}. A local model directory must hold what "
        "transformers' save_pretrained writes for both the model and its tokenizer: "
        "config.json, the weights (*.safetensors) and the tokenizer files (tokenizer.json or "
        "tokenizer_config.json with its vocabulary); add the missing files with "
        "model.save_pretrained(dir) and tokenizer.save_pretrained(dir), or point model.path at "
        "a complete directory.")


def _check_local_dir(model_cfg, path) -> None:
    """Say what is missing from a local model directory before transformers tries (and blames
    the Hub)."""
    if not (path / "config.json").is_file():
        raise _local_error(model_cfg, None, "the directory has no config.json")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise _local_error(model_cfg, None, "the directory has no tokenizer (none of "
                                            + ", ".join(TOKENIZER_FILES) + ")")


def _hub_error(model_cfg, err: Exception) -> UserError:
    if enum_value(model_cfg.source) == "local":
        return _local_error(model_cfg, err, "transformers could not read it")
    where = model_cfg.hub_id
    return UserError(
        f"Could not load the target model {where!r} for model={model_cfg.name} "
        f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}). "
        "Without Hugging Face Hub access, download the model elsewhere and set "
        "model.source=local model.path=/path/to/model, or use the embedded default "
        "model=smollm2-135m. For gated models (Llama 3), accept the licence on the Hub and run "
        "`huggingface-cli login` first."
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint, so that no-network fails in seconds, not minutes
    of retries."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_pretrained(model_cfg, location: str, dtype, kwargs: dict, remote: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(**extra):
        tok = AutoTokenizer.from_pretrained(
            location, trust_remote_code=model_cfg.trust_remote_code, **kwargs, **extra)
        mdl = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, trust_remote_code=model_cfg.trust_remote_code,
            **kwargs, **extra)
        return mdl, tok

    try:
        if not remote:
            return load()
        try:  # a copy already in the local Hugging Face cache needs no network
            return load(local_files_only=True)
        except OSError:
            pass
        if not hub_reachable():
            raise OSError("the Hugging Face Hub is unreachable and the model is not in the "
                          "local Hugging Face cache")
        return load()
    except (OSError, ValueError) as err:
        raise _hub_error(model_cfg, err) from err
    except Exception as err:  # network / hub client errors have many types
        if any(m in type(err).__module__ for m in ("huggingface", "requests", "httpx")):
            raise _hub_error(model_cfg, err) from err
        raise


def load_target(model_cfg, seed: int = 0, device: str | torch.device = "cpu") -> Target:
    """Load the target described by a ``ModelConfig`` and check its architecture facts."""
    dtype = TORCH_DTYPES[enum_value(model_cfg.dtype)]
    source = enum_value(model_cfg.source)
    if source == "random":
        model, tokenizer = _random_model(model_cfg.arch, dtype, seed)
    else:
        if source == "embedded":
            from specbench.embedded import ensure_embedded_model

            location, kwargs = str(ensure_embedded_model()), {}
        elif source == "local":
            from pathlib import Path

            if not model_cfg.path or not Path(model_cfg.path).expanduser().is_dir():
                raise UserError(
                    f"model.source=local but model.path={model_cfg.path!r} is not a directory. "
                    "Set model.path to a directory saved by transformers (config.json, weights "
                    "and tokenizer files), or use model=smollm2-135m.")
            _check_local_dir(model_cfg, Path(model_cfg.path).expanduser())
            location, kwargs = str(Path(model_cfg.path).expanduser()), {}
        elif source == "hub":
            if not model_cfg.hub_id:
                raise UserError(f"model={model_cfg.name} has source=hub but no model.hub_id; "
                                "set model.hub_id or model.source=local with model.path.")
            location, kwargs = model_cfg.hub_id, {"revision": model_cfg.revision}
        else:  # pragma: no cover - the enum prevents it
            raise UserError(f"unknown model.source {source!r}")
        model, tokenizer = _from_pretrained(model_cfg, location, dtype, kwargs,
                                            remote=source == "hub")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError(f"The tokenizer of model={model_cfg.name} has no chat template, so "
                        "conversations cannot be rendered. Use an instruct/chat model.")
    check_arch(model_cfg, model.config)
    return Target(model.to(device), tokenizer, model_cfg.name)


def rope_theta_of(config) -> float:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return float(theta) if theta is not None else 10000.0


ARCH_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "intermediate_size", "vocab_size", "rope_theta",
               "tie_word_embeddings")


def arch_of(config) -> dict:
    """The architecture facts of a transformers config, in the ``model.arch`` vocabulary."""
    facts = {k: getattr(config, k, None) for k in ARCH_FIELDS}
    facts["rope_theta"] = rope_theta_of(config)
    return facts


def check_arch(model_cfg, config) -> None:
    actual = arch_of(config)
    wrong = []
    for key in ARCH_FIELDS:
        expected = getattr(model_cfg.arch, key)
        got = actual[key]
        same = (abs(float(expected) - float(got)) <= 1e-6 * max(1.0, abs(float(expected))) if
                key == "rope_theta" else expected == got)
        if not same:
            wrong.append(f"model.arch.{key}: config says {expected!r}, the model has {got!r}")
    if wrong:
        raise UserError(
            f"The loaded model for model={model_cfg.name} does not match the architecture facts "
            f"recorded in conf/model/{model_cfg.name}.yaml: " + "; ".join(wrong) + ". Point the "
            "model at the right weights, or fix the facts in the model config file.")
