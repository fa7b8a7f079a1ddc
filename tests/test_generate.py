"""``huggingtweets generate``: the original's settings, reproducibility, the memorization
guard on planted copies, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
import torch
from conftest import run_cli
from demo_run import demo_run

from huggingtweets.generate import GenerateOptions, Generator, generate
from huggingtweets.memorization import GUARD_FILE, build_guard


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
    cut = sample(demo.run_dir, prompt, "-n", "3", "--seed", "5")
    for w, c in zip(whole["samples"], cut["samples"], strict=True):
        assert w["text"].startswith(prompt)
        assert c["text"] == w["text"].split("\n", 1)[0].rstrip() == "Good morrow,"


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("My dream is", "-n", "0"), "-n must be at least 1"),
        (("My dream is", "--top-p", "2"), "--top-p must be in (0, 1]"),
        (("My dream is", "--temperature", "0"), "--temperature must be above 0"),
        (("My dream is", "--temperature", "-1"), "--temperature must be above 0"),
        (("",), "the prompt is empty"),
        (("   ",), "the prompt is empty"),
    ],
)
def test_bad_options_one_line_exit_2(demo, args, message):
    result = run_cli("generate", demo.run_dir, *args, expect=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


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
