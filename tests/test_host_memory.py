"""Freed host memory is kept for reuse (host_memory.keep_freed_memory, opt-in): large tensors
allocated again, step after step, mostly reuse freed memory without new page faults; by
default every page faults again each step, as under glibc's defaults. Each case runs in its
own interpreter (mallopt is process-wide)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource
from specbench.host_memory import keep_freed_memory
import torch
applied = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
sizes = [10 << 20, 20 << 20, 75 << 20]  # floats: 40, 80 and 300 MiB, a step's activations
def step():
    blocks = [torch.ones(n) for n in sizes]
    del blocks
step(); step()  # the first steps map and touch the memory
before = faults()
for _ in range(10):
    step()
pages = sum(sizes) * 4 // resource.getpagesize()
print(json.dumps({"applied": applied, "faults_per_page": (faults() - before) / 10 / pages}))
"""


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k != "SPECBENCH_KEEP_FREED_MEMORY"}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_glibc = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="mallopt is glibc's (Linux)")


@needs_glibc
def test_a_freed_block_is_reused_without_page_faults():
    r = _probe(SPECBENCH_KEEP_FREED_MEMORY="1")
    assert r["applied"] is True
    assert r["faults_per_page"] < 0.5, r  # 0.14 measured: most blocks come back unmapped


@needs_glibc
def test_by_default_glibc_keeps_its_defaults_which_fault_every_page_again():
    r = _probe()  # opt-in: unset means off (the kept heap fragments; see host_memory.py)
    assert r["applied"] is False
    assert r["faults_per_page"] > 0.9, r
    assert _probe(SPECBENCH_KEEP_FREED_MEMORY="0")["applied"] is False


@needs_glibc
def test_the_users_own_glibc_settings_win():
    r = _probe(SPECBENCH_KEEP_FREED_MEMORY="1", MALLOC_MMAP_MAX_="65536")
    assert r["applied"] is False
