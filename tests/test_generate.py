"""``huggingtweets generate``: the original's settings, reproducibility, the memorization
guard on planted copies, and clear errors."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import orjson
import pytest
import torch
from conftest import run_cli
from demo_run import demo_run

from huggingtweets.core.language import default_prompt
from huggingtweets.core.options import MAX_SEED, OptionError, option_specs
from huggingtweets.generate.generator import DRAW_BATCH, GenerateOptions, Generator, generate
from huggingtweets.model.memorization import GUARD_FILE, build_guard


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run(tmp_path_factory)


def sample(*args) -> dict:
    return json.loads(run_cli("generate", *args, "--json").stdout)


def train_texts(run_dir: Path) -> list[str]:
    lines = (run_dir / "dataset/train.jsonl").read_bytes().splitlines()
    return [orjson.loads(line)["text"] for line in lines]


def test_json_output_with_the_originals_settings(demo):
    out = sample(demo.run_dir, "My dream is", "-n", "4", "--seed", "3")
    assert out["prompt"] == "My dream is" and out["seed"] == 3 and out["checked"] is True
    # Read from the model's task_specific_params, which are the original's.
    assert out["settings"] == {
        "prefix": "<|endoftext|>",
        "max_length": 160,
        "min_length": 10,
        "top_p": 0.95,
        "temperature": 1.0,
        "allow_newlines": False,
    }
    assert len(out["samples"]) == 4
    for s in out["samples"]:
        assert s["text"].startswith("My dream is") and len(s["text"]) > len("My dream is")
        assert "\n" not in s["text"] and "<|endoftext|>" not in s["text"]
        assert s["flagged"] is (s["copy"] is not None)


def test_same_seed_same_posts_other_seed_other_posts(demo):
    first = sample(demo.run_dir, "O Romeo", "-n", "3", "--seed", "11")["samples"]
    again = sample(demo.model_dir, "O Romeo", "-n", "3", "--seed", "11")["samples"]  # model folder
    other = sample(demo.run_dir, "O Romeo", "-n", "3", "--seed", "12")["samples"]
    assert [s["text"] for s in first] == [s["text"] for s in again]
    assert [s["text"] for s in first] != [s["text"] for s in other]


def test_first_line_only_unless_allow_newlines(demo):
    prompt = "Good morrow,\nfather"
    whole = sample(demo.run_dir, prompt, "-n", "3", "--seed", "5", "--allow-newlines")
    for w in whole["samples"]:
        assert w["text"].startswith(prompt)
    # Without it, a prompt of two lines would give its first line back three times: it
    # is refused, as the API refuses it (tests/test_generate_text.py).
    cut = run_cli("generate", demo.run_dir, prompt, "-n", "3", expect=2)
    assert (
        cut.stderr.strip()
        == "Error: the prompt must be one line: a post ends at its first line break"
    )
    one_line = sample(demo.run_dir, "Good morrow, father", "-n", "3", "--seed", "5")
    assert all("\n" not in s["text"] for s in one_line["samples"])


def test_text_output_numbers_posts_and_prints_the_seed(demo):
    result = run_cli("generate", demo.run_dir, "My dream is", "-n", "2", "--seed", "9")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1. My dream is")
    assert any(line.startswith("2. My dream is") for line in lines)
    assert "seed 9" in result.stderr


@pytest.fixture
def planted(demo, tmp_path):
    """A copy of the demo model whose guard also holds a post the model is known to write
    under seed 21 (the longest of five): a planted copy of a "training post"."""
    model = tmp_path / "model"
    shutil.copytree(demo.model_dir, model)
    texts = [s["text"] for s in sample(model, "My dream is", "-n", "5", "--seed", "21")["samples"]]
    index = max(range(5), key=lambda i: len(texts[i].split()))
    assert len(texts[index].split()) >= 10, texts
    return model, texts, index


def test_guard_flags_a_planted_verbatim_copy_and_no_copies_draws_it_again(demo, planted):
    model, texts, index = planted
    build_guard([*train_texts(demo.run_dir), texts[index]], model)

    out = sample(model, "My dream is", "-n", "5", "--seed", "21")
    assert [s["text"] for s in out["samples"]] == texts  # the same draws...
    flagged = [i for i, s in enumerate(out["samples"]) if s["flagged"]]
    assert index in flagged  # ...and the planted one caught, as a verbatim copy
    assert out["samples"][index]["copy"]["kind"] == "verbatim"

    text_out = run_cli("generate", model, "My dream is", "-n", "5", "--seed", "21")
    assert "⚠ copy: reproduces a training post verbatim" in text_out.stdout
    assert "--no-copies draws them again" in text_out.stderr

    redrawn = sample(model, "My dream is", "-n", "5", "--seed", "21", "--no-copies")
    assert redrawn["flagged"] == 0
    assert redrawn["samples"][index]["text"] != texts[index]
    assert redrawn["samples"][index]["attempts"] >= 2
    unflagged = [i for i in range(5) if i not in flagged]
    assert [redrawn["samples"][i]["text"] for i in unflagged] == [texts[i] for i in unflagged]


def test_guard_flags_a_long_shared_run_of_words(demo, planted):
    model, texts, index = planted
    words = texts[index].split()
    # Not the post itself: its first ten words, then something else entirely.
    build_guard([" ".join(words[:10]) + " and then the moon fell into the sea"], model)
    out = sample(model, "My dream is", "-n", "5", "--seed", "21")
    copy = out["samples"][index]["copy"]
    assert copy["kind"] == "ngram" and copy["words"] >= 8


def test_no_copies_says_how_many_remain_flagged(demo, planted):
    model, texts, index = planted
    build_guard([texts[index]], model)
    result = run_cli(
        "generate", model, "My dream is", "-n", "5", "--seed", "21", "--no-copies", "--retries", "0"
    )
    assert "1 of 5 samples still copy training posts after 0 more draws" in result.stderr


def test_python_api_reuses_a_loaded_model(demo):
    generator = Generator.load(demo.run_dir)
    result = generator.generate("My dream is", GenerateOptions(num_return_sequences=2, seed=4))
    assert result.checked and result.seed == 4
    assert [s.text for s in result.samples] == [
        s.text for s in generate(demo.run_dir, "My dream is", GenerateOptions(2, seed=4))
    ]


def test_model_without_guard_is_sampled_unchecked(demo, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(demo.model_dir, model, ignore=shutil.ignore_patterns(GUARD_FILE))
    result = run_cli("generate", model, "My dream is", "-n", "1", "--seed", "1")
    assert "no memorization guard" in result.stderr
    result = run_cli("generate", model, "My dream is", "--no-copies", expect=2)
    assert "--no-copies cannot check" in result.stderr


def named(field: str, flag: str) -> str:
    """An option's name in an error: the field (library) or the flag (the CLI may show it)."""
    return f"({field}|{flag})"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-n", "0"), named("num_return_sequences", "--num") + " must be >=1, <=1000"),
        # One call holds every sample and its check: 10^8 posts would run for weeks.
        (("-n", "100000000"), named("num_return_sequences", "--num") + " must be >=1, <=1000"),
        (("--top-p", "2"), named("top_p", "--top-p") + r" must be >0, <=1 \(got 2\)"),
        (("--top-p", "0"), named("top_p", "--top-p") + r" must be >0, <=1 \(got 0\)"),
        (("--temperature", "0"), named("temperature", "--temperature") + " must be >=0.001"),
        (("--temperature", "-1"), named("temperature", "--temperature") + " must be >=0.001"),
        (("--temperature", "inf"), named("temperature", "--temperature") + " must be a finite"),
        (("--temperature", "nan"), named("temperature", "--temperature") + " must be a finite"),
        (("--seed", str(2**64)), named("seed", "--seed") + " must be >=0, <="),
        (("--seed", "-1"), named("seed", "--seed") + " must be >=0, <="),
        (("--max-length", "0"), named("max_length", "--max-length") + " must be >=1"),
        (("--retries", "100000"), named("retries", "--retries") + " must be >=0, <=100"),
        (
            ("--min-length", "20", "--max-length", "10"),
            named("min_length", "--min-length")
            + r" \(20\) is above "
            + named("max_length", "--max-length"),
        ),
    ],
)
def test_bad_options_one_line_exit_2(demo, args, message):
    result = run_cli("generate", demo.run_dir, "My dream is", *args, expect=2)
    assert re.search(message, result.stderr), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "the prompt is empty"),
        ("   ", "the prompt is empty"),
        (" \n\t\u3000 ", "the prompt is empty"),  # an ideographic space is whitespace too
        ("My dream is " * 90_000, "the prompt is 1,080,000 characters long"),  # ~1 MB
        ("My dream \udcff", "the prompt is not valid text"),  # an undecodable byte in argv
    ],
)
def test_bad_prompts_one_line_exit_2(demo, prompt, message, monkeypatch):
    # Refused before the model is even loaded: the load is an event, not a duration.
    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the prompt was checked")

    monkeypatch.setattr(Generator, "load", load)
    result = run_cli("generate", demo.run_dir, prompt, expect=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_prompt_longer_than_the_model_writes_is_refused_after_tokenizing(demo):
    result = run_cli("generate", demo.run_dir, "My dream is " * 1000, expect=2)
    assert "tokens long, the model writes at most" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no library notice


def test_more_samples_than_one_batch_are_all_drawn(demo):
    out = sample(demo.run_dir, "O Romeo", "-n", str(DRAW_BATCH + 3), "--seed", "2")
    assert len(out["samples"]) == DRAW_BATCH + 3
    assert len({s["text"] for s in out["samples"]}) > DRAW_BATCH // 2  # not one batch repeated


def test_options_bounds_hold_for_the_python_api():
    with pytest.raises(OptionError) as error:
        GenerateOptions(num_return_sequences=10**8)
    assert error.value.name == "num_return_sequences"
    with pytest.raises(OptionError, match="is above max_length"):
        GenerateOptions(min_length=20, max_length=10)
    assert GenerateOptions(min_length=10, max_length=10).min_length == 10
    assert GenerateOptions(seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(OptionError):
        GenerateOptions(seed=MAX_SEED + 1)


def test_every_option_is_declared_with_help():
    specs = option_specs(GenerateOptions)
    assert {spec.name for spec in specs} == {f.name for f in dataclasses.fields(GenerateOptions)}
    assert all(spec.help for spec in specs)
    assert next(s for s in specs if s.name == "num_return_sequences").flags == ("-n", "--num")


def test_run_without_a_model_says_train_first(tmp_path):
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "--out", run)
    result = run_cli("generate", run, "My dream is", expect=2)
    assert f"run `huggingtweets train {run}` first" in result.stderr


def test_pickle_only_weights_refused_unless_trusted(demo, tmp_path):
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(
        demo.model_dir,
        model,
        # Only the weights change form: the memorization guard (also a .safetensors
        # file) stays, and must not pass for weights.
        ignore=shutil.ignore_patterns("model.safetensors", "README.md", "*.png"),
    )
    assert (model / GUARD_FILE).exists()
    torch.save(load_file(demo.model_dir / "model.safetensors"), model / "pytorch_model.bin")
    result = run_cli("generate", model, "My dream is", expect=2)
    assert "pickle" in result.stderr and "--trust-pickle" in result.stderr
    trusted = sample(model, "My dream is", "-n", "1", "--seed", "2", "--trust-pickle")
    reference = sample(demo.model_dir, "My dream is", "-n", "1", "--seed", "2")
    assert trusted["samples"][0]["text"] == reference["samples"][0]["text"]


@pytest.mark.parametrize(
    ("card", "language"),
    [
        ("---\nlanguage: de\ntags:\n- huggingtweets\n---\n\n# A bot\n", "de"),
        ("---\r\nlanguage:\r\n- fr\r\n---\r\n", "fr"),  # a list, as the Hub also allows
        ("---\nlanguage: [unclosed\n---\n", None),  # damaged YAML: no hint, no error
        ("# No front matter\nlanguage: de\n", None),
        ("---\nlanguage: 7\n---\n", None),
        ("---\n" + "x: y\n" * 50_000 + "language: de\n---\n", None),  # past the card's head
    ],
)
def test_the_cards_language_gives_the_default_prompt(demo, tmp_path, card, language):
    model = tmp_path / "model"
    shutil.copytree(demo.model_dir, model)
    (model / "README.md").write_text(card, newline="")
    assert Generator.load(model).language == language
    out = json.loads(run_cli("generate", model, "-n", "1", "--seed", "1", "--json").stdout)
    assert out["prompt"] == default_prompt(language)
    assert out["samples"][0]["text"].startswith(default_prompt(language))


def test_a_model_without_a_card_is_prompted_in_english(demo, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(demo.model_dir, model, ignore=shutil.ignore_patterns("README.md"))
    assert Generator.load(model).language is None
    assert Generator.load(demo.run_dir).language == "en"  # the demo's card says so
