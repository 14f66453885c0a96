"""Keep freed host memory in the process, so CPU training does not page-fault every step.

glibc's malloc serves every allocation above its mmap threshold (32 MiB at most) with a fresh
``mmap`` and gives it back with ``munmap`` when freed. A CPU training step allocates and frees
many such tensors (logits, attention scores, their gradients), so each step maps them anew and
the kernel zero-fills every page on first touch: on the 2-core development VM an EAGLE-3 step
took about 270k minor page faults per second and spent a quarter to two fifths of its CPU time
in the kernel.

``keep_freed_memory()`` tells glibc (``mallopt``) to serve large blocks from the heap too and
not to trim it, so a freed block is reused by the next step without faults. Measured with
``python -m specbench.bench algorithm=eagle3 trainer=quality trainer.max_length=1024
data=embedded-large`` (README, Performance): training tokens/s up by a fifth or more, the
peak resident memory up by about a sixth. The numbers are unchanged: only where memory comes
from changes.

**Opt-in** (``SPECBENCH_KEEP_FREED_MEMORY=1``): the command-line entry points call it first
thing, and it does nothing unless that variable is 1, outside Linux with glibc, or when the user
set glibc's own ``MALLOC_*_`` variables (theirs win). It is not the default because the heap
it keeps fragments: the EAGLE-3 quality run (feature cache, 1,024 tokens) grew from 19.9 GB to
24 GB resident in about 90 steps and was killed by the OOM killer on the 24 GiB VM, where glibc's
defaults hold 18-19 GB. Use it where memory has headroom.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
OPT_IN = "SPECBENCH_KEEP_FREED_MEMORY"
USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "MALLOC_MMAP_THRESHOLD_")
SETTINGS = {M_MMAP_MAX: 0,  # no mmap per allocation: large blocks come from the heap
            M_TRIM_THRESHOLD: 2**31 - 1,  # give heap memory back only past 2 GiB free at its top
            M_TOP_PAD: 1 << 30}  # grow the heap 1 GiB at a time (address space, not memory)


def keep_freed_memory() -> bool:
    """Apply SETTINGS with glibc's ``mallopt``; True when applied. Idempotent."""
    if os.environ.get(OPT_IN, "0") != "1" or not sys.platform.startswith("linux"):
        return False
    if any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
