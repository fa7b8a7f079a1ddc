"""QLoRA (Dettmers et al. 2023): LoRA adapters trained on a base held in 4-bit.

The base's linear layers are stored as NF4 with double quantization and computed in bf16
(bitsandbytes, CUDA only), so a 7B base fits a small GPU; the adapters stay in fp32. The
output is what ``--lora`` gives: the adapters merged onto the base reloaded unquantized
(in its own dtype), a plain transformers model; or, with ``save_adapters``, the adapters
alone, for peft (``PeftModel.from_pretrained`` / ``AutoPeftModelForCausalLM``).

Merging onto the unquantized base is QLoRA's usual way out: the adapters learnt to
correct the NF4 weights, not the originals, a difference the paper finds negligible; a
merge into NF4 weights would have to round the sum back to 4 bits and lose more.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.model.hardware import accelerator
from huggingtweets.model.loading import ResolvedModel, first_line, load_causal_lm

# Dettmers et al.: NF4 for normally distributed weights, the quantization constants
# quantized again (~0.4 bit a parameter saved), matrix products in bf16.
QUANT_TYPE = "nf4"
# NF4 is 4 bits a weight; with the double-quantized block constants about 4.13.
NF4_BYTES_PER_PARAMETER = 0.52


def check_qlora_here() -> None:
    """Refuses ``qlora`` at once where it cannot run: bitsandbytes' 4-bit kernels need
    CUDA (checked before anything is collected, prepared or loaded)."""
    if accelerator() != "cuda":
        raise OptionError(
            "qlora",
            "needs an NVIDIA GPU (CUDA) and this machine has none: use --lora, which trains "
            "the same adapters on an unquantized base",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise OptionError(
            "qlora", "needs bitsandbytes: pip install 'huggingtweets[qlora]' (or bitsandbytes)"
        )


def quantization_config():
    """transformers' BitsAndBytesConfig for QLoRA's 4-bit base."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=QUANT_TYPE,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_quantized(resolved: ResolvedModel, config, *, trust_pickle: bool):
    """The base in 4-bit on this process's GPU, made ready for adapters: peft's
    prepare_model_for_kbit_training casts the layers left in 16-bit (norms, embeddings)
    to fp32 for stable training and checkpoints activations, which a 4-bit base (a
    small GPU) needs more than speed."""
    import torch
    from accelerate import PartialState
    from peft import prepare_model_for_kbit_training

    model = load_causal_lm(
        resolved,
        trust_pickle=trust_pickle,
        config=config,
        dtype=torch.bfloat16,
        quantization_config=quantization_config(),
        device_map={"": PartialState().local_process_index},  # one GPU a process
    )
    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def save_adapters(model, tokenizer, out: Path) -> None:
    """The adapters alone (adapter_config.json naming the base, adapter_model.safetensors)
    and the tokenizer, as peft's AutoPeftModelForCausalLM loads them."""
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def merge_saved_adapters(
    adapter_dir: Path,
    base: ResolvedModel,
    tokenizer,
    *,
    trust_pickle: bool = False,
    speakers: Sequence | None = None,
):
    """A plain model: the base reloaded unquantized, in its own dtype, on the CPU (the GPU
    may still hold the 4-bit one), with the adapters in ``adapter_dir`` merged in.
    ``speakers``: their rows added as training added them; the trained values come from
    the adapters' trainable tokens."""
    from peft import PeftModel

    model = load_causal_lm(base, trust_pickle=trust_pickle, dtype="auto")
    if speakers:
        from huggingtweets.model.speakers import add_speaker_tokens

        add_speaker_tokens(tokenizer, model, speakers)  # the tokenizer has them already
    try:
        merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except (ValueError, RuntimeError, OSError) as exc:
        raise HuggingtweetsError(
            f"cannot merge the adapters onto {base.name}: {first_line(exc)}"
        ) from None
    merged.config.use_cache = True  # switched off for gradient checkpointing
    return merged
