"""A tiny GPT-2 built offline: for ``--base-model tiny``, the demo, the tests, offline users.

A byte-level BPE tokenizer is trained on the given texts (``tokenizers``) with
``<|endoftext|>`` as its only special token (BOS, EOS and padding, as in GPT-2), and a
small GPT-2-architecture model is initialised at random under a seed. Both are saved
with ``save_pretrained`` (safetensors), so from there on the folder takes exactly the
code path of a real base model: ``load_causal_lm(folder)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.loading import make_readable

EOS = "<|endoftext|>"


def train_byte_bpe(texts: Iterable[str], vocab_size: int):
    """A GPT-2-style tokenizer (``GPT2Tokenizer``) whose BPE merges are learned on ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: nothing is <unk>
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    # Rebuilt as GPT-2's own tokenizer class: the same pre-tokenizer regex, decoder and
    # special-token handling as the real gpt2, only the vocabulary differs.
    return GPT2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=EOS,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
    )


def build_tiny_base(
    texts: Iterable[str],
    out_dir: Path,
    *,
    vocab_size: int = 4096,
    context: int = 256,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 256,
    seed: int = 42,
) -> Path:
    """Train a tokenizer on ``texts``, initialise a small GPT-2, save both into ``out_dir``."""
    from transformers import GPT2Config

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise HuggingtweetsError("no text to build the tiny base model's tokenizer from")
    tokenizer = train_byte_bpe(texts, vocab_size)
    tokenizer.model_max_length = context
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=context,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return save_new_model(config, tokenizer, out_dir, seed)


def save_new_model(config, tokenizer, out_dir: Path, seed: int) -> Path:
    """A causal LM initialised at random from ``config`` under ``seed``, saved with
    ``tokenizer`` into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM

    # Seeded on a private generator state, so the caller's random stream is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    make_readable(out_dir)  # safetensors writes the weights 0600
    return out_dir
