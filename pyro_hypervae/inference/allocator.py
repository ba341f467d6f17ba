"""How a process keeps the CPU memory of its tensors between steps (glibc's malloc).

PyTorch takes CPU tensors from the C library's ``malloc``. With glibc's default
settings, memory freed at the end of a step goes back to the operating system
(large blocks are mapped and unmapped one at a time, under a threshold that
glibc moves as blocks are freed, and the free top of the heap is trimmed), so
the next step maps its activations and gradients again and the kernel faults in
and zeroes every page: about 3,000-4,000 page faults a step for the paper's conv
target at 100 points here. ``keep_freed_memory()`` fixes two of glibc's settings
(``mallopt``) so that freed blocks stay in the process for the next step:

* ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's largest on 64-bit): blocks up to that
  come from the heap, not from a mapping of their own;
* ``M_TRIM_THRESHOLD`` = 256 MiB: the heap keeps that much free memory at its top
  before it gives any back.

The process's peak memory does not grow (its resident memory stays near its
peak instead of falling between steps). Measured side by side in fresh processes,
one thread (``benchmarks/allocator.py``, docs/results/allocator.md): the paper's
conv target's training step 10-11% faster (page faults a step 3,453 -> 356), its
-LL with 1,024 samples 6% faster (21,724 faults a call -> 0); the MLP 784-256-10
step unchanged (517 -> 317 faults, within noise).

The command line calls it when it starts; from Python, call it once before
training. It acts on the calling process only, and does nothing (returns False)
where the C library is not glibc, where another allocator is preloaded
(jemalloc, tcmalloc), where glibc's own settings were given (``MALLOC_*_``
variables, ``GLIBC_TUNABLES`` with ``glibc.malloc``: the user's choice wins), or
where ``PYRO_HYPERVAE_MALLOC=default`` asks for glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
OPT_OUT = "PYRO_HYPERVAE_MALLOC"  # =default: leave glibc's settings alone

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def why_not_kept() -> str:
    """Why ``keep_freed_memory`` would leave this process's allocator alone ("" if it would not)."""
    if os.environ.get(OPT_OUT, "").strip().lower() in ("default", "glibc", "0", "off"):
        return f"{OPT_OUT}={os.environ[OPT_OUT]} asks for glibc's defaults"
    given = [k for k in _GLIBC_VARIABLES if k in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        given.append("GLIBC_TUNABLES")
    if given:
        return f"glibc's own settings are given ({', '.join(given)})"
    preload = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload:
        return "another allocator is preloaded (LD_PRELOAD)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "the C library is not glibc"
    return ""


def keep_freed_memory() -> bool:
    """Set glibc's thresholds so freed tensor memory stays in the process (see the module
    docstring); True when they are in effect, False when left alone (``why_not_kept``)."""
    if why_not_kept():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
