"""Hardware and precision: which device trains, in which number format, how fast.

Kept out of the training recipe so that it reads as a recipe, and so that what changes the
whole process (the allocator's settings) is confined to the training run and undone after.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# glibc malloc: serve tensors up to 1 GiB from the heap, and keep up to 2 GiB of freed
# heap for reuse (both must fit a C int); see keep_freed_memory().
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 2**31 - 1
# glibc's documented defaults, restored after training (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD).
GLIBC_DEFAULT_MMAP_THRESHOLD = 128 * 1024
GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def accelerator() -> str | None:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return None


def cpu_has_native_bf16() -> bool:
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(requested: str) -> str:
    """``auto``: bf16 where the hardware computes it natively, else fp16 on GPUs, else fp32.

    On a CPU without AVX512-BF16/AMX, bf16 is emulated and ~100× slower than fp32.
    """
    if requested != "auto":
        return requested
    import torch

    device = accelerator()
    if device == "cuda":
        # Emulated bf16 (pre-Ampere GPUs) counts as supported by default, and is slow.
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device is None and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def cpu_computes_natively(precision: str) -> bool:
    import torch

    if precision == "bf16":
        return cpu_has_native_bf16()
    if precision == "fp16":
        return torch.cpu._is_amx_fp16_supported()
    return True


def slow_precision_warning(precision: str) -> str | None:
    """A warning when ``precision`` would be emulated on this CPU, else None."""
    if accelerator() is None and not cpu_computes_natively(precision):
        return (
            f"this CPU has no native {precision} arithmetic: it is emulated, far slower "
            f"than {resolve_precision('auto')} (what precision auto picks here)"
        )
    return None


def describe_device(precision: str) -> str:
    import torch

    if accelerator() == "cuda":
        n = torch.cuda.device_count()
        return f"{n}× {torch.cuda.get_device_name(0)} ({precision})"
    if accelerator() == "mps":
        return f"Apple MPS ({precision})"
    return f"CPU, {torch.get_num_threads()} threads ({precision})"


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool:
    """Set glibc malloc parameters; False where there is no glibc (not Linux, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt takes a C int: a larger value wraps (1 << 34 becomes 0, a trim threshold of
    # 0, which returns every freed page at once: the very slowness this avoids).
    return all(libc.mallopt(ctypes.c_int(p), ctypes.c_int(v)) for p, v in settings)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    By default every tensor above 32 MiB (logits, embedding gradients) is a fresh mmap
    whose pages are faulted in and zeroed again on every step: on a 2-core CPU that
    halved the speed of a GPT-2 training step. Linux/glibc only; elsewhere a no-op.
    Returns whether the settings took effect.
    """
    return _mallopt(((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))


def restore_freed_memory_defaults() -> None:
    """glibc's defaults again (a long-lived server must give memory back between jobs)."""
    _mallopt(
        (
            (_M_MMAP_THRESHOLD, GLIBC_DEFAULT_MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, GLIBC_DEFAULT_TRIM_THRESHOLD),
        )
    )


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """keep_freed_memory() for the length of a training run, the defaults after it."""
    changed = keep_freed_memory()
    try:
        yield
    finally:
        if changed:
            restore_freed_memory_defaults()
