"""The text a person is shown (generate/text.py): no U+FFFD the model invented, from a
tiny GPT-2 whose weights make it write bytes that are not UTF-8, through the real
Generator, the CLI, share links and the server's batching loop; and one prompt rule for
the CLI and the API."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch
from conftest import run_cli

from huggingtweets.core.options import OptionError
from huggingtweets.generate.generator import DEFAULT_SETTINGS, GenerateOptions, Generator
from huggingtweets.generate.text import PostDecoder, prompt_problem
from huggingtweets.model.tiny import EOS, build_tiny_base

# prompt → the bytes (or EOS) the model writes after it, then end-of-text.
CHAINS = {
    # The sample ends inside a character: "!" then two of the three bytes of "あ".
    "incomplete x": [b"!", 0xE3, 0x81],
    # A continuation byte with no character to continue, in the middle.
    "lone y": [0x80, b"?"],
    # The first byte of a two-byte character followed by ".", in the middle.
    "lead z": [0xC3, b"."],
    # A three-byte character written one byte at a time: valid, kept whole.
    "whole w": [0xE2, 0x82, 0xAC],
    # U+FFFD written as its own three bytes (as the training posts might hold it).
    "kept v": [0xEF, 0xBF, 0xBD],
    # U+FFFD in the prompt itself.
    "kept \ufffd u": [b","],
}
SHOWN = {
    "incomplete x": "incomplete x!",
    "lone y": "lone y?",
    "lead z": "lead z.",
    "whole w": "whole w€",
    "kept v": "kept v\ufffd",
    "kept \ufffd u": "kept \ufffd u,",
}
SCALE = 20.0  # logits: the chosen token ~110 above the rest, drawn with probability ~1


def byte_chain_model(out: Path, *, generate_only: bool = False) -> Path:
    """A tiny GPT-2 (byte-level BPE, model/tiny.py) whose next token depends on its
    last token only, as CHAINS say: every block adds nothing to the residual stream, the
    position embeddings are zero, each state token's embedding is its own axis, and the
    (untied) output head maps that axis to the next token. ``generate_only``: a
    generation_config.json our loop does not sample (transformers' generate() does)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    build_tiny_base(
        ["the quick brown fox jumps over the lazy dog"] * 4,
        out,
        vocab_size=300,
        context=64,
        n_layer=1,
        n_head=1,
        n_embd=32,
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    alphabet = bytes_to_unicode()

    def token(item) -> int:
        if item == EOS:
            return tokenizer.convert_tokens_to_ids(EOS)
        byte = item[0] if isinstance(item, bytes) else item
        return tokenizer.convert_tokens_to_ids(alphabet[byte])

    following: dict[int, int] = {}
    for prompt, chain in CHAINS.items():
        last = tokenizer(EOS + prompt, add_special_tokens=False)["input_ids"][-1]
        ids = [last, *(token(item) for item in chain), token(EOS)]
        for state, after in itertools.pairwise(ids):
            assert following.setdefault(state, after) == after, (prompt, state)
    config = GPT2Config.from_pretrained(out)
    config.tie_word_embeddings = False
    config.task_specific_params = {"text-generation": {**DEFAULT_SETTINGS, "min_length": 0}}
    assert len(following) <= config.n_embd
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.transformer.ln_f.weight.fill_(1.0)
        for axis, (state, after) in enumerate(following.items()):
            model.transformer.wte.weight[state, axis] = 1.0
            model.lm_head.weight[after, axis] += SCALE
    if generate_only:
        model.generation_config.repetition_penalty = 1.01
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory) -> Path:
    return byte_chain_model(tmp_path_factory.mktemp("chain") / "model")


@pytest.fixture(scope="module")
def chain_generator(chain_model) -> Generator:
    return Generator.load(chain_model)


def _plain_decode(self, ids):
    """``tokenizer.decode`` as it was: every stray byte a U+FFFD."""
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return self.tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("prompt", list(CHAINS))
def test_the_generator_shows_no_replacement_character_the_model_invented(chain_generator, prompt):
    result = chain_generator.generate(prompt, GenerateOptions(num_return_sequences=3, seed=1))
    assert [s.text for s in result.samples] == [SHOWN[prompt]] * 3


def test_the_model_really_writes_bytes_that_are_not_utf8(chain_generator, monkeypatch):
    """Without the byte-level decoding the same draws show U+FFFD: the test above
    would fail for the reason it names."""
    monkeypatch.setattr(PostDecoder, "decode", _plain_decode)
    options = GenerateOptions(num_return_sequences=1, seed=1)
    shown = {p: chain_generator.generate(p, options).samples[0].text for p in CHAINS}
    assert shown["incomplete x"] == "incomplete x!\ufffd"
    assert shown["lone y"] == "lone y\ufffd?"
    assert shown["lead z"] == "lead z\ufffd."
    assert shown["whole w"] == "whole w€"  # valid bytes decode the same either way


def test_transformers_generate_path_decodes_the_same(tmp_path):
    """A model our loop does not sample (generate()): the same rule."""
    from huggingtweets.generate.sampling import fast_sampling_supported

    generator = Generator.load(byte_chain_model(tmp_path / "model", generate_only=True))
    assert not fast_sampling_supported(generator.model)
    for prompt, shown in SHOWN.items():
        result = generator.generate(prompt, GenerateOptions(num_return_sequences=2, seed=4))
        assert [s.text for s in result.samples] == [shown] * 2


def test_whole_samples_are_decoded_alike(chain_generator):
    options = GenerateOptions(num_return_sequences=2, seed=2, allow_newlines=True)
    result = chain_generator.generate("incomplete x", options)
    assert [s.text for s in result.samples] == ["incomplete x!"] * 2


def _query_text(url: str) -> str:
    return parse_qs(urlsplit(url).query)["text"][0]


def test_the_cli_json_and_share_links_carry_no_invented_replacement(chain_model):
    for prompt, shown in SHOWN.items():
        args = ("generate", chain_model, prompt, "-n", "2", "--seed", "5", "--json", "--share")
        out = json.loads(run_cli(*args).stdout)
        assert out["prompt"] == prompt
        for sample in out["samples"]:
            assert sample["text"] == shown
            for link in sample["share"].values():
                assert _query_text(link).startswith(shown)
                if "\ufffd" not in shown:
                    assert "\ufffd" not in _query_text(link) and "%EF%BF%BD" not in link
    printed = run_cli("generate", chain_model, "lone y", "-n", "1", "--seed", "5").stdout
    assert printed.splitlines()[0] == "1. lone y?"


def test_the_servers_batching_loop_decodes_the_same(chain_generator):
    from huggingtweets.serve.batching import EncodedPrompt, PromptRows, sample_batch

    generator = chain_generator
    settings = {**generator.settings(GenerateOptions()), "allow_newlines": False}
    prompts = [EncodedPrompt.encode(generator, p, settings) for p in CHAINS]
    groups = [
        PromptRows(p.ids, 2, p.max_length, p.min_length, torch.Generator().manual_seed(i))
        for i, p in enumerate(prompts)
    ]
    model = generator._sampling_model("fp32")
    rows = sample_batch(model, groups, settings, generator._line_break_ids())
    for prompt, own in zip(prompts, rows, strict=True):
        assert [prompt.text_of(generator, row) for row in own] == [SHOWN[prompt.prompt]] * 2


def test_decoding_equals_the_tokenizers_wherever_the_bytes_are_valid(chain_generator):
    tokenizer, decoder = chain_generator.tokenizer, chain_generator.post_decoder
    assert decoder.byte_level
    for text in ["the quick brown fox", "日本語 😀 é", "a \ufffd b", "  two  spaces\tand tab"]:
        ids = tokenizer(EOS + text, add_special_tokens=False)["input_ids"]
        assert decoder.decode(ids) == tokenizer.decode(ids, skip_special_tokens=True) == text
    # A stray byte dropped; an unfinished character at the end cut.
    to_id = tokenizer.convert_tokens_to_ids
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte = {b: to_id(c) for b, c in bytes_to_unicode().items()}
    assert decoder.decode([byte[0x61], byte[0xBF], byte[0x62], byte[0xF0], byte[0x9F]]) == "ab"


# -- one prompt rule for the CLI and the API ------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        ("My\ndream", "must be one line: a post ends at its first line break"),
        ("My\r\ndream", "must be one line: a post ends at its first line break"),
        ("My\u2028dream", "must be one line: a post ends at its first line break"),
        ("My\x1bdream", "contains a control character (U+001B): remove it"),
        ("My\x00dream", "contains a control character (U+0000): remove it"),
        ("My\x7fdream", "contains a control character (U+007F): remove it"),
        ("\u200f\u200e", "needs a visible character (not only spaces, control or format marks)"),
    ],
)
def test_the_cli_refuses_what_the_api_refuses_in_the_same_words(chain_model, prompt, problem):
    from huggingtweets.serve.requests import GenerateRequest

    assert prompt_problem(prompt) == problem
    with pytest.raises(OptionError) as api:
        GenerateRequest(model="bot", prompt=prompt)
    assert api.value.name == "prompt" and api.value.problem == problem
    result = run_cli("generate", chain_model, prompt, expect=2)
    assert result.stderr.strip().splitlines() == [f"Error: the prompt {problem}"], result.stderr
    with pytest.raises(Exception, match="the prompt " + problem.split(" (")[0]):
        Generator.load(chain_model).generate(prompt)


def test_allow_newlines_takes_a_prompt_of_several_lines_and_no_other_control(chain_model):
    out = json.loads(
        run_cli(
            "generate", chain_model, "two\nlines x", "--allow-newlines", "-n", "1", "--json"
        ).stdout
    )
    assert out["samples"][0]["text"].startswith("two\nlines x")
    result = run_cli("generate", chain_model, "a\x1bb", "--allow-newlines", expect=2)
    assert "contains a control character (U+001B)" in result.stderr


def test_the_server_takes_its_rule_from_the_library_which_never_imports_the_server():
    from huggingtweets.generate import text
    from huggingtweets.serve import requests

    assert requests.prompt_problem is text.prompt_problem
    code = (
        "import sys, huggingtweets.generate.generator, huggingtweets.generate.text, "
        "huggingtweets.generate.share; "
        "print([m for m in sys.modules if m.startswith('huggingtweets.serve')])"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stderr
