"""Our sampling loop: what ``generate()`` samples, minus the work a post does not need.

Sampling is our own loop over the model and its KV cache (:func:`sample_continuations`),
not ``generate()``, because only the first line of a sample is kept: each sample stops at
its first line break or ``<|endoftext|>`` and leaves the batch at once, so the others run
on without it and nobody waits for the slowest. It samples from what ``generate()``
samples from: the same top-k (transformers' default 50), top-p, temperature and minimum
length. ``generate()`` picks a token as ``argmax(p / q)`` with ``q`` exponential noise
drawn for every token of the vocabulary (50,257 random numbers per sample and token for
GPT-2: on a CPU, a fifth of the time of the model's own forward pass); we draw it for the
top-k candidates only, the same distribution (:func:`pick_tokens`). With ``as_pipeline``
we draw all of it: then a seed gives the very first lines ``pipeline("text-generation")``
gives (up to the rounding of differently shaped matrix products;
tests/test_generate_speed.py). A model whose generation_config.json asks for more (a
repetition penalty, beams ...) is not ours to sample (:func:`fast_sampling_supported`).
"""

from __future__ import annotations

import inspect

# transformers' top_k when generation_config.json sets none (GenerationConfig's defaults).
DEFAULT_TOP_K = 50
# generation_config.json settings our sampling loop does not reproduce, with the value that
# means "off": a model that turns one on is sampled by transformers' generate() instead.
GENERATE_ONLY_SETTINGS = {
    "num_beams": 1,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "min_p": None,
    "top_h": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "min_new_tokens": None,
    "max_new_tokens": None,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "remove_invalid_values": False,
    "watermarking_config": None,
    "guidance_scale": None,
    "penalty_alpha": None,
    "dola_layers": None,
    "stop_strings": None,
}


def fast_sampling_supported(model) -> bool:
    """Whether our loop samples ``model`` exactly as ``generate()`` would: a decoder-only
    model with transformers' standard KV cache, asking for nothing but top-k, top-p,
    temperature and lengths."""
    if getattr(model.config, "is_encoder_decoder", False):
        return False
    dynamic_cache = getattr(type(model), "_supports_default_dynamic_cache", None)
    if dynamic_cache is None or not dynamic_cache():
        return False
    config = model.generation_config
    return all(
        getattr(config, name, None) in (None, off) for name, off in GENERATE_ONLY_SETTINGS.items()
    )


def token_ids(value) -> list[int]:
    """A config's token id setting (None, one id or a list of them) as a list."""
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list | tuple) else [value])]


def stop_mask(vocab: int, stops, device):
    """A boolean per vocabulary entry: True for the tokens that end a sample."""
    import torch

    ends = torch.zeros(vocab, dtype=torch.bool, device=device)
    ends[[i for i in stops if i < vocab]] = True
    return ends


def _cache_arguments(model) -> tuple[str, dict]:
    """The forward pass's name for the KV cache, and the keyword that computes the logits
    of the last position only (where the model has it): architectures differ."""
    forward = inspect.signature(type(model).forward).parameters
    cache_name = "cache" if "cache" in forward else "past_key_values"
    return cache_name, {"logits_to_keep": 1} if "logits_to_keep" in forward else {}


def sample_continuations(
    model, input_ids, count, settings, max_length, min_length, stops, as_pipeline=False
):
    """Sample ``count`` continuations of ``input_ids`` (one row) as ``generate()`` does,
    each ending at a token of ``stops`` or end-of-text, which leaves the batch at once.
    ``as_pipeline``: draw the random numbers as ``generate()`` does, not only those used.

    Returns one 1-D tensor per sample: the prompt and its continuation up to and with the
    token that ended it.
    """
    import torch
    from transformers import DynamicCache

    config = model.generation_config
    eos = token_ids(config.eos_token_id)
    top_k = DEFAULT_TOP_K if config.top_k is None else int(config.top_k)
    device = input_ids.device
    cache = DynamicCache(config=model.config)
    cache_name, last_logits_only = _cache_arguments(model)
    # The prompt is the same for every sample: read it once, then copy its cache.
    with torch.inference_mode():
        out = model(input_ids=input_ids, use_cache=True, **{cache_name: cache}, **last_logits_only)
        logits = out.logits[:, -1].float().expand(count, -1)
        del out
        cache.batch_repeat_interleave(count)
        vocab = logits.shape[-1]
        ends = stop_mask(vocab, [*stops, *eos], device)
        steps = max_length - input_ids.shape[1]
        tokens_out = torch.zeros(count, steps, dtype=torch.long, device=device)
        lengths = torch.full((count,), steps, dtype=torch.long, device=device)
        active = torch.arange(count, device=device)
        for step in range(steps):
            too_short = input_ids.shape[1] + step < min_length
            scores = _scores(logits, settings["temperature"], eos if too_short else [])
            noise = None
            if as_pipeline:  # generate()'s noise: the whole vocabulary, finished rows too
                noise = torch.empty((count, vocab), device=device).exponential_()[active]
            token = pick_tokens(scores, top_k, settings["top_p"], noise)
            tokens_out[active, step] = token
            done = ends[token]
            if step + 1 == steps:
                break
            if bool(done.any()):
                lengths[active[done]] = step + 1
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                cache.batch_select_indices(keep)
                active, token = active[keep], token[keep]
            out = model(input_ids=token[:, None], use_cache=True, **{cache_name: cache})
            logits = out.logits[:, -1].float()
            del out
    prompt = input_ids[0]
    return [torch.cat([prompt, tokens_out[i, :n]]) for i, n in enumerate(lengths.tolist())]


def _scores(logits, temperature: float, banned: list[int]):
    """The logits as transformers' temperature and minimum-length processors leave them:
    ``banned`` (end-of-text, before the minimum length) cannot be drawn."""
    scores = logits / temperature if temperature != 1.0 else logits
    if banned:
        scores = scores.clone() if scores is logits else scores
        scores[:, banned] = -float("inf")
    return scores


def top_candidates(scores, top_k: int, top_p: float):
    """(index, probs): each row's candidates as transformers' TopK and TopP leave them —
    the top-k (ties with the k-th score kept), top-p applied — in vocabulary order, as the
    argmax over the whole vocabulary meets them, with their renormalised probabilities."""
    vocab = scores.shape[-1]
    k = min(top_k, vocab) if top_k > 0 else vocab
    values, index = scores.topk(k)
    if k < vocab:
        kth = values[:, -1:]
        kept = int((scores >= kth).sum(-1).max())
        if kept > k:  # ties with the k-th score: TopK keeps them all
            values, index = scores.topk(kept)
            values = values.masked_fill(values < kth, -float("inf"))
    if top_p < 1.0:
        ascending = values.flip(-1)
        drop = ascending.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[:, -1] = False  # the most likely token always stays
        values = ascending.masked_fill(drop, -float("inf")).flip(-1)
    index, order = index.sort(-1)
    return index, values.gather(-1, order).softmax(-1)


def pick_tokens(scores, top_k: int, top_p: float, noise=None):
    """One token per row, as transformers' TopK, TopP and multinomial pick it, computed
    on the top-k candidates only (the others have probability 0): the candidate with the
    largest ``p / q``, ``q`` exponential noise (``noise``: over the whole vocabulary)."""
    import torch

    index, probs = top_candidates(scores, top_k, top_p)
    noise = torch.empty_like(probs).exponential_() if noise is None else noise.gather(-1, index)
    choice = (probs / noise).argmax(-1, keepdim=True)
    return index.gather(-1, choice).squeeze(1)
