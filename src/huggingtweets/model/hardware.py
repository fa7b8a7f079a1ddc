"""Hardware and precision: which device trains, in which number format, how fast.

Kept out of the training recipe so that it reads as a recipe, and so that what changes the
whole process (the allocator's settings) is confined to the training run and undone after.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

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


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda" ...) computes bf16 natively, i.e. faster
    than fp32 (AVX512-BF16/AMX CPUs, Ampere and later GPUs)."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


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


# -- memory ---------------------------------------------------------------------

GIB = 1 << 30
# Activation memory per token, hidden unit and layer, in values kept for the backward
# pass: ~34 bytes in 16-bit (Korthikanti et al. 2022, "Reducing Activation Recomputation
# in Large Transformer Models", with fused attention, whose s² term is gone) = 17 values.
ACTIVATION_VALUES = 17
LORA_TARGETS_PER_LAYER = 4  # the attention projections, hidden × hidden each


@dataclass(frozen=True)
class MemoryEstimate:
    """What training a model takes, in bytes, before the allocator's and libraries' own."""

    parameters: int
    trainable: int
    weights: int
    training_state: int  # gradients and AdamW's two moments, fp32, of what is trained
    activations: int  # kept for the backward pass, the logits included
    tokens: str  # "4 × 256", what the activations are for

    @property
    def total(self) -> int:
        return self.weights + self.training_state + self.activations

    def describe(self) -> str:
        return (
            f"about {self.total / GIB:.1f} GiB ({self.parameters / 1e6:,.0f}M parameters: "
            f"weights {self.weights / GIB:.1f}, gradients and AdamW "
            f"{self.training_state / GIB:.1f}, activations for {self.tokens} tokens "
            f"{self.activations / GIB:.1f} GiB)"
        )


def count_parameters(config) -> int:
    """The parameters of the causal LM ``config`` describes, counted on the meta device:
    no memory, no weights read (tied weights once)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate_training_memory(
    config,
    *,
    batch: int,
    block: int,
    precision: str,
    lora_r: int | None = None,
    weight_bytes: float = 4,
) -> MemoryEstimate:
    """Weights + gradients + AdamW states + activations of one step (``batch`` blocks of
    ``block`` tokens); with ``lora_r``, only the adapters are trained."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    parameters = count_parameters(config)
    layers = getattr(text, "num_hidden_layers", 0) or 0
    hidden = getattr(text, "hidden_size", 0) or 0
    vocab = getattr(text, "vocab_size", 0) or 0
    if lora_r is None:
        trainable = parameters
        weights = parameters * 4  # fp32 master weights (autocast does the fast maths)
    else:
        trainable = layers * LORA_TARGETS_PER_LAYER * lora_r * 2 * hidden
        weights = int(parameters * weight_bytes) + trainable * 4
    value = 2 if precision in ("bf16", "fp16") else 4
    tokens = batch * block
    activations = tokens * (layers * hidden * ACTIVATION_VALUES * value + 3 * vocab * 4)
    return MemoryEstimate(
        parameters, trainable, weights, trainable * 12, activations, f"{batch} × {block}"
    )


def available_memory(device: str | None) -> int | None:
    """Bytes this process can still use: the GPU's free memory, else the system's
    MemAvailable shared among the processes of this machine (torchrun's
    LOCAL_WORLD_SIZE); None where it cannot be told."""
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            import psutil
        except ImportError:
            return None
        available = psutil.virtual_memory().available
    try:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    return available // processes


def check_training_memory(resolved, options) -> str | None:
    """Before a base model is loaded: one line with what training it takes and what this
    machine has, from its config.json alone (``resolved``: models.ResolvedModel;
    ``options``: train.TrainOptions). Raises HuggingtweetsError when it clearly cannot
    fit, instead of the OOM killer ending the run halfway. None where it cannot tell
    (a config transformers cannot read is reported when the model loads)."""
    from transformers import AutoConfig

    from huggingtweets.core.errors import HuggingtweetsError
    from huggingtweets.model.loading import context_length

    try:
        config = AutoConfig.from_pretrained(
            resolved.location, local_files_only=resolved.local_files_only
        )
        precision = "bf16" if options.qlora else resolve_precision(options.precision)
        device = accelerator()
        adapters = options.lora or options.qlora
        half = options.lora and device is not None and precision in ("bf16", "fp16")
        # QLoRA: NF4 with double quantization, about 0.52 bytes a weight (qlora.py).
        weight_bytes = 0.52 if options.qlora else 2 if half else 4
        block = options.block_size or min(256, context_length(config) or 256)
        estimate = estimate_training_memory(
            config,
            batch=options.per_device_train_batch_size,
            block=block,
            precision=precision,
            lora_r=options.lora_r if adapters else None,
            weight_bytes=weight_bytes,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError):
        return None
    available = available_memory(device)
    where = "the GPU has" if device == "cuda" else "this machine has"
    line = f"training {resolved.name} takes {estimate.describe()}"
    if available is None:
        return line
    line += f"; {where} {available / GIB:.1f} GiB available"
    if estimate.total > available:
        raise HuggingtweetsError(
            f"{line}: it cannot fit. Train LoRA adapters (lora), fewer or shorter blocks per "
            "step (per_device_train_batch_size, block_size), or a smaller base model"
        )
    return line
