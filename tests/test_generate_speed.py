"""The speed levers of ``generate`` change how fast samples come, not what they are.

Our sampling loop stops each sample at its first line break or end-of-text and drops it
from the batch, reads only the top-k candidates, and draws random numbers for them only.
Shown here on a small random model whose byte-sized vocabulary makes line breaks and
end-of-text common (so samples end at every length, and some run to ``max_length``):

- with ``as_pipeline`` (the noise drawn as ``generate()`` draws it, fp32), a seed gives
  exactly the first lines of ``pipeline("text-generation")``, the seed cards' snippet;
- by default (noise for the candidates only) the draws follow the same distribution, by
  a chi-square test against the exact top-k / top-p probabilities;
- bf16 sampling is a copy: the model stays as loaded, and its next-token probabilities
  stay close to fp32's.
"""

from __future__ import annotations

import sys

import pytest
import torch
from scipy.stats import chisquare

from huggingtweets.core.options import OptionError
from huggingtweets.generate.generator import GenerateOptions, Generator
from huggingtweets.generate.sampling import fast_sampling_supported, pick_tokens
from huggingtweets.model.tiny import build_tiny_base
from huggingtweets.train.recipe import save_model

PROMPT = "My dream is"
TEXTS = [
    "My dream is a quiet house by the sea,\nwith a garden.",
    "O Romeo, Romeo! wherefore art thou Romeo?",
    "Good night, good night! Parting is such sweet sorrow.",
] * 20


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random GPT-2 of 262 tokens (bytes, end-of-text, a few merges), saved as train
    saves a model: the original's sampling settings in its config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("byte-gpt2")
    build_tiny_base(TEXTS, folder, vocab_size=262, n_layer=2, n_head=2, n_embd=32, seed=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    save_model(model, AutoTokenizer.from_pretrained(folder), folder)
    return folder


@pytest.fixture(scope="module")
def generator(model_dir):
    return Generator.load(model_dir)


@pytest.fixture(scope="module")
def snippet(model_dir):
    from transformers import pipeline

    return pipeline("text-generation", model=str(model_dir))


@pytest.fixture(autouse=True)
def one_thread():
    """As the Generator samples a model this small: on a busy CPU, two threads of a tiny
    model's pipeline run many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("allow_newlines", [False, True])
def test_as_pipeline_gives_the_pipelines_samples_for_a_seed(generator, snippet, allow_newlines):
    assert fast_sampling_supported(generator.model)
    ended_early = lines = replaced = 0
    for seed in range(2):
        torch.manual_seed(seed)
        theirs = [o["generated_text"] for o in snippet(PROMPT, num_return_sequences=10)]
        if not allow_newlines:
            theirs = [t.split("\n", 1)[0] for t in theirs]
        options = GenerateOptions(
            num_return_sequences=10, seed=seed, as_pipeline=True, allow_newlines=allow_newlines
        )
        ours = [s.text for s in generator.generate(PROMPT, options).samples]
        # The same draws; the pipeline shows each stray byte of this byte-sized model
        # as U+FFFD, we drop them (generate/text.py): one U+FFFD per maximal invalid
        # run, as Python's UTF-8 decoder and the tokenizers library both count them.
        replaced += sum(t.count("\ufffd") for t in theirs)
        assert ours == [t.replace("\ufffd", "").rstrip() for t in theirs]
        ended_early += sum(len(t) < 100 for t in ours)
        lines += sum("\n" in t for t in ours)
    assert replaced  # the rule was exercised
    if allow_newlines:
        assert lines  # whole samples, line breaks and all
    else:
        assert ended_early >= 4  # samples did end at line breaks / end-of-text


def test_samples_end_at_their_first_line_break_and_leave_the_batch(generator, monkeypatch):
    sizes = []
    forward = generator.model.forward

    def recording(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(generator.model, "forward", recording)
    tokenizer = generator.tokenizer
    breaks = set(generator._line_break_ids())
    assert tokenizer.convert_tokens_to_ids("Ċ") in breaks  # GPT-2's byte for "\n"
    input_ids = tokenizer(f"<|endoftext|>{PROMPT}", return_tensors="pt")["input_ids"]
    settings = {**generator.settings(GenerateOptions()), "allow_newlines": False}
    torch.manual_seed(0)
    rows = generator._sample(input_ids, 10, settings, 161, 11, precision="fp32")
    ends = breaks | {tokenizer.eos_token_id}
    for row in rows:
        continuation = row[input_ids.shape[1] :].tolist()
        # No token after the first that ends it; a row without one ran to max_length.
        stops = [i for i, t in enumerate(continuation) if t in ends]
        assert stops == [len(continuation) - 1] or (not stops and len(row) == 161)
    assert sizes[0] == 1  # the prompt, read once for all samples
    assert sizes[1] == 10 and sizes[-1] < 10  # finished samples left the batch
    assert sizes[1:] == sorted(sizes[1:], reverse=True)
    assert len(sizes) == max(len(r) for r in rows) - input_ids.shape[1]


def test_candidate_draws_follow_the_top_k_top_p_distribution():
    """20,000 draws with noise for the candidates only, against the exact probabilities
    transformers' TopK(50) → TopP(0.9) → softmax gives (the one row repeated)."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(1, 1000, generator=generator) * 2
    exact = TopPLogitsWarper(0.9)(None, TopKLogitsWarper(50)(None, scores.clone()))
    probs = exact.softmax(-1)[0]
    torch.manual_seed(1)
    drawn = pick_tokens(scores.expand(20_000, -1), 50, 0.9)
    counts = torch.bincount(drawn, minlength=1000).double()
    support = probs > 0
    assert counts[~support].sum() == 0  # never a token the filters remove
    assert 10 < int(support.sum()) <= 50
    expected = probs[support].double()
    test = chisquare(counts[support].numpy(), (expected / expected.sum() * 20_000).numpy())
    assert test.pvalue > 1e-3, test


def test_ties_at_the_kth_score_are_kept_as_topk_keeps_them():
    scores = torch.tensor([[5.0, 4.0, 3.0, 3.0, 3.0, 1.0]])
    torch.manual_seed(0)
    drawn = set(pick_tokens(scores.expand(5_000, -1), 3, 1.0).tolist())
    assert drawn == {0, 1, 2, 3, 4}  # TopK(3) keeps all three tokens tied at 3.0


def test_bf16_samples_from_a_copy_close_to_fp32(generator):
    options = GenerateOptions(num_return_sequences=3, seed=5, precision="bf16")
    samples = generator.generate(PROMPT, options).samples
    assert all(s.text.startswith(PROMPT) for s in samples)
    assert generator.model.dtype == torch.float32  # evaluate measures the model as loaded
    copy = generator._sampling_model("bf16")
    assert copy is not generator.model and copy.dtype == torch.bfloat16
    assert generator._sampling_model("fp32") is generator.model
    ids = generator.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        p32 = generator.model(ids).logits.float().softmax(-1)
        p16 = copy(ids).logits.float().softmax(-1)
    total_variation = (p32 - p16).abs().sum(-1).max() / 2
    assert total_variation < 0.02


def test_a_model_asking_for_more_than_we_reproduce_is_sampled_by_generate(model_dir):
    generator = Generator.load(model_dir)
    generator.model.generation_config.repetition_penalty = 1.3
    assert not fast_sampling_supported(generator.model)
    options = GenerateOptions(num_return_sequences=2, seed=1, precision="fp32")
    samples = generator.generate(PROMPT, options).samples
    assert len(samples) == 2 and all(s.text.startswith(PROMPT) for s in samples)


def test_a_prompt_whose_first_line_ends_samples_nothing(generator, monkeypatch):
    """Its samples would all be its first line: refused, as the API refuses it."""
    from huggingtweets.core.errors import HuggingtweetsError

    monkeypatch.setattr(generator, "_sample", lambda *a, **k: pytest.fail("sampled"))
    with pytest.raises(HuggingtweetsError, match="the prompt must be one line"):
        generator.generate("Good morrow,\nfather", GenerateOptions(num_return_sequences=2))


def test_as_pipeline_samples_in_fp32():
    with pytest.raises(OptionError, match="precision"):
        GenerateOptions(as_pipeline=True, precision="bf16")


def test_bf16_where_native_and_the_model_is_large(generator, monkeypatch):
    """auto picks bf16 only where the device computes it natively (the CUDA branch
    exercised without a GPU) and for models of BF16_FROM parameters and more."""
    import huggingtweets.model.hardware as hardware

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert hardware.native_bf16("cuda") and not hardware.native_bf16("mps")
    monkeypatch.setattr(hardware, "native_bf16", lambda device_type: True)
    assert generator._sampling_model("auto") is generator.model  # 0.1M parameters
    module = sys.modules["huggingtweets.generate.generator"]  # the package exports generate()
    monkeypatch.setattr(module, "BF16_FROM", 1)
    assert generator._sampling_model("auto").dtype == torch.bfloat16
