"""The causal LMs people fine-tune today, beside GPT-2: what each needs, and tiny ones.

``--base-model`` takes any causal LM by Hub id or folder; the recipe (``train``) is the
same for all. What differs between architectures is handled here, in data:

- **LoRA's target modules**: peft knows the attention projections of most model types
  (GPT-2's ``c_attn``; Llama's, Qwen2's, Gemma's ``q_proj``/``v_proj``); for a type it
  does not know (Phi-3 fuses them into ``qkv_proj``) the adapters go on every linear
  layer but the output head (peft's ``"all-linear"``).
- **The separator**: every post is preceded by the model's own end-of-text token, its
  ``eos_token`` (``<|endoftext|>`` for GPT-2, Qwen2 and Phi-3, ``<|end_of_text|>`` for
  Llama 3, ``<eos>`` for Gemma), which the saved model carries as its ``prefix``.

:func:`build_tiny_model` builds a small random model of each family offline — its config
class and a tokenizer of its kind (byte-level BPE like Llama 3 and Qwen2, SentencePiece-
style pieces with byte fallback like Phi-3 and Gemma) with its special tokens, trained on
the given posts — so that training, LoRA, generation, the ``pipeline`` snippet and the
card are tested on each architecture without a download.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.tiny import save_new_model


@dataclass(frozen=True)
class Family:
    """An architecture as its released models set it up."""

    config: str  # the transformers config class
    examples: str  # models of this family people fine-tune, with their sizes
    tokens: dict[str, str]  # bos/eos/pad/unk as the family's tokenizer names them
    pieces: bool  # SentencePiece-style "▁" pieces with byte fallback (else byte-level BPE)
    add_bos: bool = False  # the tokenizer puts BOS before a text by itself
    config_args: dict = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        "GPT2Config",
        "gpt2 (124M), distilgpt2 (82M)",
        {"bos": "<|endoftext|>", "eos": "<|endoftext|>"},
        pieces=False,
    ),
    "llama": Family(
        "LlamaConfig",
        "HuggingFaceTB/SmolLM2-135M, -360M, -1.7B; meta-llama/Llama-3.2-1B, -3B",
        {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"},
        pieces=False,
        add_bos=True,
    ),
    "qwen2": Family(
        "Qwen2Config",
        "Qwen/Qwen2.5-0.5B, -1.5B, -3B",
        {"eos": "<|endoftext|>", "pad": "<|endoftext|>"},
        pieces=False,
    ),
    "phi3": Family(
        "Phi3Config",
        "microsoft/Phi-3-mini-4k-instruct (3.8B), Phi-3.5-mini (3.8B)",
        {"bos": "<s>", "eos": "<|endoftext|>", "pad": "<|endoftext|>", "unk": "<unk>"},
        pieces=True,
        add_bos=True,
    ),
    "gemma": Family(
        "GemmaConfig",
        "google/gemma-2b; Gemma 2 / 3 (gemma2, gemma3_text) are the same shape",
        {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "unk": "<unk>"},
        pieces=True,
        add_bos=True,
        config_args={"head_dim": 16},
    ),
}


def lora_target_modules(model) -> str | None:
    """Where LoRA adapters go on ``model``: None lets peft choose by model type (it knows
    GPT-2, Llama, Qwen2, Gemma ...); "all-linear" for the types it does not know."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(model.config, "model_type", None)
    return (
        None if model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING else "all-linear"
    )


# -- tiny models of each family ----------------------------------------------------------


def train_tokenizer(texts: list[str], family: Family, vocab_size: int):
    """A fast tokenizer of the family's kind with its special tokens, learned on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys(family.tokens.values()))
    if family.pieces:  # Llama-2 / Gemma style: spaces as "▁", unknown bytes as <0xNN>
        bpe = Tokenizer(models.BPE(unk_token=family.tokens.get("unk"), byte_fallback=True))
        bpe.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
        bpe.decoder = decoders.Sequence(
            [
                decoders.Replace("▁", " "),
                decoders.ByteFallback(),
                decoders.Fuse(),
                decoders.Strip(" ", 1, 0),
            ]
        )
        alphabet = ["▁"]
        specials += [f"<0x{i:02X}>" for i in range(256)]
    else:  # GPT-2 / Llama 3 / Qwen2 style: byte-level BPE
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    bos = family.tokens.get("bos")
    if family.add_bos and bos:
        bos_id = bpe.token_to_id(bos)
        bpe.post_processor = TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    names = {"bos": "bos_token", "eos": "eos_token", "pad": "pad_token", "unk": "unk_token"}
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, **{names[k]: v for k, v in family.tokens.items()}
    )


def build_tiny_model(
    texts: Iterable[str],
    out_dir: Path,
    architecture: str,
    *,
    vocab_size: int = 1024,
    context: int = 256,
    layers: int = 2,
    heads: int = 4,
    hidden: int = 64,
    seed: int = 42,
) -> Path:
    """A small random model of ``architecture`` (a key of :data:`FAMILIES`) with a
    tokenizer of its kind trained on ``texts``, saved into ``out_dir`` (safetensors)."""
    import transformers

    family = FAMILIES.get(architecture)
    if family is None:
        raise HuggingtweetsError(f"no tiny {architecture!r} model: one of {', '.join(FAMILIES)}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise HuggingtweetsError("no text to build the tiny model's tokenizer from")
    tokenizer = train_tokenizer(texts, family, vocab_size)
    tokenizer.model_max_length = context
    ids = {
        f"{k}_token_id": tokenizer.convert_tokens_to_ids(v)
        for k, v in family.tokens.items()
        if k != "unk"
    }
    ids.setdefault("pad_token_id", ids["eos_token_id"])
    config_class = getattr(transformers, family.config)
    if architecture == "gpt2":
        sizes = {"n_positions": context, "n_embd": hidden, "n_layer": layers, "n_head": heads}
    else:
        sizes = {
            "max_position_embeddings": context,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": max(1, heads // 2),  # grouped-query attention, as released
        }
    config = config_class(vocab_size=len(tokenizer), **sizes, **ids, **family.config_args)
    return save_new_model(config, tokenizer, out_dir, seed)
