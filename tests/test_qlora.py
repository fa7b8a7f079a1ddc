"""train --qlora and --save-adapters, as far as a CPU can check them: the options, the
refusal without CUDA (through the real CLI), the 4-bit config built, and the merge of
saved adapters onto an unquantized base (the step QLoRA's save takes). The 4-bit training
itself runs in benchmarks/gpu_check.sh on a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from huggingtweets.core.options import OptionError
from huggingtweets.model.hardware import estimate_training_memory
from huggingtweets.model.loading import load_causal_lm, resolve_model
from huggingtweets.train import qlora
from huggingtweets.train.recipe import TrainOptions


@pytest.fixture
def cuda_here(monkeypatch) -> None:
    """A machine with CUDA and bitsandbytes, as far as the options can tell."""
    monkeypatch.setattr(qlora, "accelerator", lambda: "cuda")
    monkeypatch.setattr(qlora.importlib.util, "find_spec", lambda name: object())


# -- options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"qlora": True, "lora": True}, "qlora", "without lora"),
        ({"qlora": True, "precision": "fp16"}, "precision", "fp16 conflicts with qlora"),
        ({"qlora": True, "precision": "fp32"}, "precision", "fp32 conflicts with qlora"),
        ({"save_adapters": True}, "save_adapters", "applies with lora or qlora"),
        ({"lora": True, "save_adapters": True, "speaker_tokens": True}, "save_adapters", ""),
    ],
)
def test_conflicting_options_are_refused(cuda_here, kwargs, field, words):
    with pytest.raises(OptionError) as error:
        TrainOptions(**kwargs)
    assert error.value.name == field and words in error.value.problem


def test_qlora_accepted_where_cuda_is(cuda_here):
    for precision in ("auto", "bf16"):
        TrainOptions(qlora=True, precision=precision)
    TrainOptions(qlora=True, save_adapters=True, lora_r=8)
    TrainOptions(lora=True, save_adapters=True)


def test_qlora_without_bitsandbytes_says_what_to_install(monkeypatch):
    monkeypatch.setattr(qlora, "accelerator", lambda: "cuda")
    monkeypatch.setattr(qlora.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(OptionError, match=r"huggingtweets\[qlora\]"):
        TrainOptions(qlora=True)


def test_qlora_without_cuda_stops_before_anything(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        "train", "sample:romeo", "--out", run, "--base-model", "tiny", "--qlora", expect=2
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--qlora needs an NVIDIA GPU" in lines[0] and "--lora" in lines[0]
    assert "Traceback" not in result.output
    assert not run.exists()  # nothing collected or prepared


def test_quantization_config_is_qloras():
    config = qlora.quantization_config()
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_memory_estimate_of_a_4bit_base():
    from transformers import GPT2Config

    args = {"batch": 4, "block": 256, "precision": "bf16", "lora_r": 16}
    half = estimate_training_memory(GPT2Config(), weight_bytes=2, **args)
    nf4 = estimate_training_memory(GPT2Config(), weight_bytes=qlora.NF4_BYTES_PER_PARAMETER, **args)
    assert nf4.weights < half.weights / 3


# -- adapters saved, then merged onto the unquantized base -----------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The same LoRA training twice: merged on save, and the adapters alone."""
    root = tmp_path_factory.mktemp("runs")
    merged, adapters = root / "merged", root / "adapters"
    run_cli("prepare", "sample:romeo", "--out", merged)
    shutil.copytree(merged / "dataset", adapters / "dataset")
    common = ("--base-model", "tiny", "--lora", "--max-steps", 3, "--precision", "fp32")
    run_cli("train", merged, *common, "--no-card", "--evaluate", "never")
    run_cli("train", adapters, *common, "--save-adapters", "--no-card", "--evaluate", "never")
    return merged, adapters


def _logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(["My dream is", "ROMEO: But soft"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.slow
def test_saved_adapters_load_with_peft_and_merge_as_lora_does(two_runs):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoTokenizer

    merged_run, adapter_run = two_runs
    model_dir = adapter_run / "model"
    assert (model_dir / "adapter_config.json").exists()
    assert not (model_dir / "model.safetensors").exists()  # the adapters alone
    config = json.loads((model_dir / "adapter_config.json").read_text("utf-8"))
    base = resolve_model(config["base_model_name_or_path"])
    assert Path(base.location) == adapter_run / "tiny-base"
    lora = json.loads((adapter_run / "metrics.json").read_text("utf-8"))["hyperparameters"]
    assert lora["lora"]["merged"] is False

    tokenizer = AutoTokenizer.from_pretrained(model_dir)  # saved beside the adapters
    unmerged = PeftModel.from_pretrained(load_causal_lm(base), str(model_dir)).eval()
    auto = AutoPeftModelForCausalLM.from_pretrained(str(model_dir)).eval()
    merged = qlora.merge_saved_adapters(model_dir, base, tokenizer).eval()
    assert type(merged).__name__ == "GPT2LMHeadModel"  # a plain model, no peft layers
    trained_merged = load_causal_lm(merged_run / "model", strict=True).eval()

    expected = _logits(unmerged, tokenizer)
    torch.testing.assert_close(_logits(auto, tokenizer), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(_logits(merged, tokenizer), expected, rtol=0, atol=1e-4)
    # The same training merged on save (--lora alone) gives the same model.
    torch.testing.assert_close(_logits(trained_merged, tokenizer), expected, rtol=0, atol=1e-4)
    base_logits = _logits(load_causal_lm(base), tokenizer)
    assert (base_logits - expected).abs().max() > 1e-3  # the adapters did change something


def test_adapters_alone_need_the_card_off_and_skip_evaluation(tmp_path):
    """The card and evaluate load a merged model: with --save-adapters the card on (the
    default) is refused before training, `--evaluate always` too; auto skips evaluating."""
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "--out", run)
    common = ("--base-model", "tiny", "--lora", "--save-adapters", "--max-steps", 1)
    result = run_cli("train", run, *common, expect=2)
    assert result.stderr.count("\n") == 1 and "--save-adapters" in result.stderr
    assert "--no-card" in result.stderr and not (run / "model").exists()
    result = run_cli("train", run, *common, "--no-card", "--evaluate", "always", expect=2)
    assert "--save-adapters" in result.stderr and not (run / "model").exists()
    run_cli("train", run, *common, "--no-card")
    assert (run / "model" / "adapter_config.json").exists()
    assert not (run / "evaluation.json").exists()
