"""``train`` refuses a base model that clearly cannot fit, in one line, before loading it.

The estimate comes from the base's config.json alone (its parameters counted on the meta
device): weights, gradients and AdamW states, and the activations of one step, against
the memory available (MemAvailable, or the GPU's free memory).
"""

from __future__ import annotations

import io
import json
import os
import sys

import pytest
from conftest import run_cli

from huggingtweets import TrainOptions, train
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model import hardware
from huggingtweets.model.hardware import (
    available_memory,
    check_training_memory,
    estimate_training_memory,
)
from huggingtweets.model.loading import resolve_model
from huggingtweets.model.tiny import build_tiny_base

POSTS = [f"post number {i} says something worth reading" for i in range(20)]


@pytest.fixture
def run_dir(tmp_path):
    dataset = tmp_path / "run" / "dataset"
    dataset.mkdir(parents=True)
    for name, posts in (("train", POSTS[:16]), ("valid", POSTS[16:])):
        lines = [json.dumps({"handle": "a", "id": str(i), "text": t}) for i, t in enumerate(posts)]
        (dataset / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "run"


@pytest.fixture
def huge_base(tmp_path):
    """A GPT-3-sized config.json (175B parameters) beside weights that are not weights:
    loading them would fail, so a refusal proves nothing was loaded."""
    from transformers import GPT2Config

    folder = tmp_path / "gpt-huge"
    folder.mkdir()
    GPT2Config(n_layer=96, n_embd=12288, n_head=96).save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"not weights")
    return folder


def test_a_huge_base_is_refused_in_one_line_before_loading(run_dir, huge_base, monkeypatch):
    def loading(*args, **kwargs):
        raise AssertionError("the model or its tokenizer was loaded")

    recipe = sys.modules["huggingtweets.train.recipe"]  # the module (the package exports train())
    monkeypatch.setattr(recipe, "load_tokenizer", loading)
    monkeypatch.setattr(recipe, "load_causal_lm", loading)
    with pytest.raises(HuggingtweetsError) as refused:
        train(run_dir, TrainOptions(base_model=str(huge_base)))
    message = str(refused.value)
    assert "\n" not in message
    assert "174,592M parameters" in message and "cannot fit" in message
    assert "this machine has" in message and "GiB available" in message
    assert "lora" in message  # what to do instead


def test_the_cli_says_it_in_one_line_exit_2(run_dir, huge_base):
    result = run_cli("train", run_dir, "--base-model", huge_base, expect=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot fit" in lines[0], result.stderr


def test_a_base_that_fits_gets_one_line_with_both_figures(tmp_path, monkeypatch):
    folder = build_tiny_base(POSTS, tmp_path / "tiny", vocab_size=300, n_layer=2, n_embd=32)
    resolved = resolve_model(folder)
    line = check_training_memory(resolved, TrainOptions(base_model=str(folder)))
    assert line.startswith(f"training {folder} takes about ")
    assert "GiB available" in line and "4 × 256 tokens" in line
    # The same model where almost nothing is left.
    monkeypatch.setattr("huggingtweets.model.hardware.available_memory", lambda device: 1 << 20)
    with pytest.raises(HuggingtweetsError, match="cannot fit"):
        check_training_memory(resolved, TrainOptions(base_model=str(folder)))


def test_the_estimate_of_gpt2_small():
    from transformers import GPT2Config

    full = estimate_training_memory(GPT2Config(), batch=4, block=256, precision="bf16")
    assert full.parameters == 124_439_808  # tied input and output embeddings counted once
    assert full.weights + full.training_state == 16 * full.parameters  # fp32 + grad + 2 moments
    lora = estimate_training_memory(GPT2Config(), batch=4, block=256, precision="bf16", lora_r=16)
    assert lora.trainable < full.parameters / 100
    assert lora.total < full.total / 1.5
    assert lora.activations == full.activations  # the backward pass still runs through it
    fp32 = estimate_training_memory(GPT2Config(), batch=4, block=256, precision="fp32")
    assert fp32.activations > full.activations


def test_processes_of_one_machine_share_its_memory(monkeypatch):
    # The real /proc/meminfo is read: a figure between nothing and the machine's memory.
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < available_memory(None) <= total
    # Shared among the processes: against one fixed MemAvailable, not two reads of a
    # figure that moves with whatever else runs on the machine.
    meminfo = "MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n"
    real_open = open

    def fixed(path, *args, **kwargs):
        return io.StringIO(meminfo) if path == "/proc/meminfo" else real_open(path, *args, **kwargs)

    monkeypatch.setattr(hardware, "open", fixed, raising=False)  # the module's open only
    assert available_memory(None) == 8_000_000 * 1024
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert available_memory(None) == 4_000_000 * 1024


def test_on_a_gpu_its_free_memory_counts(tmp_path, monkeypatch):
    """The CUDA path, exercised here without one: the estimate is held against the GPU's
    free memory, not the machine's."""
    import torch

    folder = build_tiny_base(POSTS, tmp_path / "tiny", vocab_size=300, n_layer=2, n_embd=32)
    monkeypatch.setattr("huggingtweets.model.hardware.accelerator", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 << 20, 80 * 2**30))
    with pytest.raises(HuggingtweetsError, match=r"the GPU has 0\.0 GiB available: it cannot fit"):
        check_training_memory(resolve_model(folder), TrainOptions(base_model=str(folder)))
