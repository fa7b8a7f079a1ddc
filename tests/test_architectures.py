"""Any modern causal LM as the base: a tiny random Llama, Qwen2, Phi-3 and Gemma, built
offline with a tokenizer of their kind, each fine-tuned fully and with LoRA, then sampled
from, loaded by the card's ``pipeline`` snippet, and given a card."""

from __future__ import annotations

import shutil

import orjson
import pytest
import torch
from safetensors.torch import load_file

from huggingtweets.card.model_card import write_card
from huggingtweets.core.runs import RunDir
from huggingtweets.generate.generator import GenerateOptions, Generator
from huggingtweets.model.architectures import FAMILIES, build_tiny_model, lora_target_modules
from huggingtweets.prepare.dataset import prepare
from huggingtweets.train.packing import read_texts
from huggingtweets.train.recipe import TrainOptions, train

MODERN = ("llama", "qwen2", "phi3", "gemma")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small two-account dataset (80 training, 20 held-out posts): fast to train on."""
    run = RunDir(tmp_path_factory.mktemp("arch") / "rj")
    prepare(run.root, ["sample:romeo", "sample:juliet"])
    for path, keep in ((run.train_path, 80), (run.valid_path, 20)):
        path.write_bytes(b"\n".join(path.read_bytes().splitlines()[:keep]) + b"\n")
    return run


@pytest.fixture(scope="module")
def bases(dataset, tmp_path_factory):
    """One tiny base per architecture, built once from the training posts."""
    texts = read_texts(dataset.train_path)
    root = tmp_path_factory.mktemp("bases")
    return {name: build_tiny_model(texts, root / name, name) for name in MODERN}


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("architecture", MODERN)
def test_each_architecture_trains_generates_and_gets_a_card(
    architecture, lora, dataset, bases, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(dataset.dataset_dir, run_dir / "dataset")
    family = FAMILIES[architecture]
    options = TrainOptions(
        base_model=str(bases[architecture]),
        max_steps=2,
        lora=lora,
        block_size=64,
        per_device_train_batch_size=2,
    )
    result = train(run_dir, options)
    config = orjson.loads((result.model_dir / "config.json").read_bytes())
    assert config["model_type"] == architecture
    # The separator is the model's own end-of-text token, carried as the prefix.
    assert config["prefix"] == family.tokens["eos"]
    assert config["task_specific_params"]["text-generation"]["prefix"] == family.tokens["eos"]
    assert result.metrics["hyperparameters"]["lora"] == (
        {"r": 16, "alpha": 32, "merged": True} if lora else None
    )
    if lora:  # merged into the attention projections, per architecture; embeddings as is
        before = load_file(bases[architecture] / "model.safetensors")
        after = load_file(result.model_dir / "model.safetensors")
        attention = "qkv_proj" if architecture == "phi3" else "q_proj"
        key = f"model.layers.0.self_attn.{attention}.weight"
        assert not torch.equal(before[key], after[key])
        embeddings = "model.embed_tokens.weight"
        assert torch.equal(before[embeddings], after[embeddings])
    # A plain model (adapters merged): strict loading refuses any weight left unused.
    generator = Generator.load(run_dir)
    options = GenerateOptions(num_return_sequences=2, seed=1, max_length=30)
    samples = generator.generate("My dream is", options)
    assert all(s.text.startswith("My dream is") for s in samples.samples)
    assert samples.checked  # the memorization guard travels with every architecture
    if not lora:  # the snippet and the card do not depend on how the model was trained
        from transformers import pipeline

        snippet = pipeline("text-generation", model=str(result.model_dir))  # as on the card
        outputs = snippet("My dream is", num_return_sequences=2, max_new_tokens=8)
        assert [o["generated_text"][:11] for o in outputs] == ["My dream is"] * 2
        card = write_card(run_dir, samples=1, checked=1, generator=generator).read_text()
        assert f"pre-trained model {architecture} (a local folder)" in card
        assert "model='huggingtweets/romeo-juliet'" in card


def test_lora_targets_per_architecture(bases):
    from transformers import AutoModelForCausalLM

    for name in MODERN:
        model = AutoModelForCausalLM.from_pretrained(bases[name])
        # peft's own choice for the types it knows; every linear layer for Phi-3, whose
        # attention projections are fused (qkv_proj) and unknown to peft.
        assert lora_target_modules(model) == ("all-linear" if name == "phi3" else None)


@pytest.mark.parametrize("architecture", ["gemma", "phi3", "llama"])
def test_a_continuation_keeps_its_first_space(architecture, bases, monkeypatch):
    """SentencePiece-style tokenizers (Phi-3, Gemma) drop the leading space of a text
    decoded alone: the sample is decoded whole and the prompt cut off."""
    generator = Generator.load(bases[architecture])
    eos = FAMILIES[architecture].tokens["eos"]
    whole = generator.tokenizer(f"{eos}My dream is lovely, thee", add_special_tokens=False)
    rows = torch.tensor([whole["input_ids"]])
    monkeypatch.setattr(generator, "_sample", lambda *args, **kwargs: rows)
    settings = {**generator.settings(GenerateOptions()), "allow_newlines": False}
    settings["prefix"] = eos
    assert generator._draw("My dream is", 1, settings) == ["My dream is lovely, thee"]
