"""The train stage on the tiny model: the real CLI, the real Trainer, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from safetensors import safe_open

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import iter_jsonl
from huggingtweets.model.memorization import GUARD_FILE, MemorizationGuard
from huggingtweets.train.recipe import (
    TrainingInterrupted,
    TrainOptions,
    epoch_history,
    pack_blocks,
    train,
)

METRIC_KEYS = {
    "base_model",
    "base_model_type",
    "seed",
    "hyperparameters",
    "eval_loss_before",
    "eval_loss_after",
    "perplexity_before",
    "perplexity_after",
    "best_epoch",
    "history",
    "train_tokens",
    "train_blocks",
    "timings",
    "device",
}
HYPERPARAMETER_KEYS = {
    "learning_rate",
    "num_train_epochs",
    "lr_scheduler_type",
    "warmup_steps",
    "optimizer",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "block_size",
    "precision",
    "lora",
    "early_stopping_patience",
}
TEXT_GENERATION = {
    "do_sample": True,
    "min_length": 10,
    "max_length": 160,
    "temperature": 1.0,
    "top_p": 0.95,
    "prefix": "<|endoftext|>",
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "romeo"
    run_cli("prepare", "sample:romeo", "--out", run)
    return run


def _copy_run(prepared: Path, to: Path) -> Path:
    shutil.copytree(prepared / "dataset", to / "dataset")
    return to


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory) -> tuple[Path, str]:
    run = _copy_run(prepared, tmp_path_factory.mktemp("trained") / "romeo")
    result = run_cli("train", run, "--base-model", "tiny", "--num-train-epochs", 2)
    return run, result.stdout


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text("utf-8"))


# -- the trained model --------------------------------------------------------------


def test_the_seed_cards_pipeline_snippet_works_unchanged(trained):
    run, _ = trained
    from transformers import pipeline, set_seed

    set_seed(0)
    generator = pipeline("text-generation", model=str(run / "model"))
    outputs = generator("My dream is", num_return_sequences=5)
    assert len(outputs) == 5
    for output in outputs:
        text = output["generated_text"]
        assert text.startswith("My dream is")
        assert "<|endoftext|>" not in text  # the prefix is fed, not returned
    # Sampling (do_sample from the saved generation config), not five greedy copies.
    assert len({o["generated_text"] for o in outputs}) > 1


def test_model_folder_holds_everything_and_the_original_settings(trained):
    run, _ = trained
    model = run / "model"
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "loss_curve.png",
        GUARD_FILE,
    ):
        assert (model / name).is_file(), name
    assert not list(model.glob("*.bin")) and not list(model.glob("*.pt"))
    assert (model / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((model / "config.json").read_text("utf-8"))
    assert config["task_specific_params"] == {"text-generation": TEXT_GENERATION}
    assert config["prefix"] == "<|endoftext|>"
    generation = json.loads((model / "generation_config.json").read_text("utf-8"))
    for key in ("do_sample", "top_p", "temperature", "max_length", "min_length"):
        assert generation[key] == TEXT_GENERATION[key], key
    # Nothing left behind: checkpoints removed after success, no temporary folders.
    assert not (run / "checkpoints").exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_memorization_guard_knows_the_training_posts(trained):
    run, _ = trained
    guard = MemorizationGuard.load(run / "model")
    post = next(row["text"] for _, row in iter_jsonl(run / "dataset" / "train.jsonl"))
    assert guard.check(post) is not None
    assert guard.check("a sentence no character of the play ever said aloud") is None


def test_metrics_before_after_and_their_keys(trained):
    run, stdout = trained
    metrics = _metrics(run)
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["hyperparameters"].keys() >= HYPERPARAMETER_KEYS
    hp = metrics["hyperparameters"]
    assert hp["lr_scheduler_type"] == "cosine" and hp["warmup_steps"] == 0
    assert hp["num_train_epochs"] == 2 and hp["lora"] is None
    assert hp["learning_rate"] == 1e-3  # tiny starts from random weights
    assert metrics["base_model"] == "tiny" and metrics["base_model_type"] == "tiny"
    # Training helps: the validation loss falls, and perplexity is exp(loss).
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 0.5
    assert metrics["perplexity_after"] == pytest.approx(2.718281828 ** metrics["eval_loss_after"])
    epochs = [h["epoch"] for h in metrics["history"]]
    assert epochs == [0.0, 1.0, 2.0]
    assert metrics["history"][0]["eval_loss"] == metrics["eval_loss_before"]
    assert all(h["train_loss"] is not None for h in metrics["history"][1:])
    best = min(metrics["history"][1:], key=lambda h: h["eval_loss"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["eval_loss_after"] == pytest.approx(best["eval_loss"], abs=1e-4)
    assert metrics["train_blocks"] >= metrics["train_tokens"] / hp["block_size"]
    assert metrics["timings"]["tokens_per_second"] > 0
    assert f"{metrics['eval_loss_before']:.4f} → {metrics['eval_loss_after']:.4f}" in stdout
    assert (run / "tiny-base" / "config.json").is_file()


def test_eval_loss_is_the_mean_loss_of_every_predicted_token(prepared, tmp_path):
    """metrics.json's loss is the mean over next-token predictions: a block of n tokens
    makes n - 1 of them (counting n would understate the loss by a factor (n - 1) / n)."""
    import torch

    from huggingtweets.model.loading import load_causal_lm, load_tokenizer

    run = _copy_run(prepared, tmp_path / "run")
    block = 16  # short blocks: a miscount of one per block would be 6% off
    options = ("--num-train-epochs", 1, "--block-size", block, "--precision", "fp32")
    run_cli("train", run, "--base-model", "tiny", "--no-card", *options)
    tokenizer = load_tokenizer(run / "model")
    model = load_causal_lm(run / "model").eval()
    texts = [row["text"] for _, row in iter_jsonl(run / "dataset" / "valid.jsonl")]
    blocks, _ = pack_blocks(texts, tokenizer, block)
    total, predicted = 0.0, 0
    with torch.no_grad():
        for ids in blocks:
            logits = model(torch.tensor([ids])).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(
                logits, torch.tensor(ids[1:]), reduction="sum"
            ).item()
            predicted += len(ids) - 1
    # A miscount of one token per block is 6 % off; 1e-3 leaves room for the Trainer's
    # batched fp32 kernels summing in another order than this loop (1e-4 apart on some CPUs).
    assert _metrics(run)["eval_loss_after"] == pytest.approx(total / predicted, rel=1e-3)


# -- data format --------------------------------------------------------------------


def test_eos_before_every_post_packed_into_blocks(trained):
    run, _ = trained
    from huggingtweets.model.loading import load_tokenizer

    tokenizer = load_tokenizer(run / "model")
    posts = ["Hello there, friend.", "A second post here", "and a third one"]
    blocks, n = pack_blocks(posts, tokenizer, block_size=8)
    flat = [t for block in blocks for t in block]
    assert n == len(flat)
    assert all(len(b) == 8 for b in blocks[:-1]) and 2 <= len(blocks[-1]) <= 8
    assert tokenizer.decode(flat) == "".join("<|endoftext|>" + p for p in posts)


def test_epoch_history_averages_train_losses_per_epoch():
    log = [
        {"epoch": 0.5, "loss": 4.0},
        {"epoch": 1.0, "loss": 2.0},
        {"epoch": 1.0, "eval_loss": 3.0},
        {"epoch": 2.0, "loss": 1.0},
        {"epoch": 2.0, "eval_loss": 2.5},
    ]
    assert epoch_history(log, 5.0) == [
        {"epoch": 0.0, "eval_loss": 5.0, "train_loss": None},
        {"epoch": 1.0, "eval_loss": 3.0, "train_loss": 3.0},
        {"epoch": 2.0, "eval_loss": 2.5, "train_loss": 1.0},
    ]


REUSE_PROBE = """
import resource, sys, torch
from huggingtweets.train.recipe import keep_freed_memory
if len(sys.argv) > 1:
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # two 256 MiB tensors made, used and freed, as logits and their gradient are
    logits = torch.ones(64 << 20)
    return float((logits * 2)[0])
counts = []
for _ in range(12):
    before = faults()
    step()
    counts.append(faults() - before)
print(counts[-6:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_memory_is_reused_not_faulted_in_again():
    """A training step's large tensors (logits, gradients) come back every step: with
    keep_freed_memory() they reuse freed pages instead of faulting fresh ones in."""

    def steady_state_faults(*args: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", REUSE_PROBE, *args], capture_output=True)
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout)

    pages = (256 << 20) // 4096
    assert all(n > pages for n in steady_state_faults())  # glibc's default: fresh pages
    # Kept: most steps fault nothing (glibc's placement may still put one elsewhere).
    assert statistics.median(steady_state_faults("keep")) < pages // 50


# -- resume ---------------------------------------------------------------------------


def test_ctrl_c_keeps_a_checkpoint_and_resume_completes(prepared, tmp_path):
    run = _copy_run(prepared, tmp_path / "romeo")
    args = ["train", run, "--base-model", "tiny", "--num-train-epochs", 2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    deadline = time.monotonic() + 120
    while b"loss=" not in seen:  # the bar shows a loss: training steps are running
        chunk = proc.stderr.read1(4096)
        assert chunk, f"training ended before it could be interrupted: {seen[-2000:]!r}"
        seen += chunk
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    err = (seen + err).decode("utf-8", "replace")
    assert proc.returncode == 130, err[-3000:]
    assert "--resume" in err and "Traceback" not in err
    checkpoints = sorted((run / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, err[-3000:]
    interrupted_at = int(checkpoints[-1].name.split("-")[1])
    assert (checkpoints[-1] / "model.safetensors").is_file()
    assert not (run / "model").exists() and not (run / "metrics.json").exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []

    run_cli(*args, "--resume")
    metrics = _metrics(run)
    assert metrics["resumed_from"] == f"checkpoint-{interrupted_at}"
    total_steps = metrics["global_steps"]
    assert interrupted_at < total_steps
    # Every epoch evaluated once, across the two sessions, and nothing else: stopping
    # mid-epoch saves a checkpoint without an evaluation.
    assert [h["epoch"] for h in metrics["history"]] == [0.0, 1.0, 2.0]
    assert "epoch 0." not in err  # no evaluation was reported at the interruption
    assert (run / "model" / "model.safetensors").is_file()


def test_an_abrupt_stop_still_names_the_checkpoint_to_resume_from(prepared, tmp_path):
    """A second Ctrl-C stops at once, mid-step: still a TrainingInterrupted (the CLI
    then says --resume; running again without it would start over)."""
    from transformers import TrainerCallback

    class SecondCtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.epoch > 1:  # the first epoch's checkpoint is saved by now
                raise KeyboardInterrupt

    run = _copy_run(prepared, tmp_path / "romeo")
    options = TrainOptions(base_model="tiny", num_train_epochs=2)
    with pytest.raises(TrainingInterrupted) as stop:
        train(run, options, callbacks=[SecondCtrlC()])
    checkpoint = stop.value.checkpoint
    assert checkpoint is not None and (checkpoint / "trainer_state.json").is_file()
    assert checkpoint.parent == run / "checkpoints"
    assert not (run / "model").exists() and not (run / "metrics.json").exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_resume_with_other_options_is_refused_by_name_then_resumes(prepared, tmp_path):
    """A resume that changes what defines the schedule (epochs, learning rate, batch size,
    block size, base model ...) would "finish" at once or follow a schedule nobody chose,
    and write metrics.json with settings the model never trained with: refused in one
    line naming the option, the checkpoints kept; with the same options it continues."""
    from transformers import TrainerCallback

    class StopAfterFirstEpoch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.epoch > 1:
                raise KeyboardInterrupt

    run = _copy_run(prepared, tmp_path / "romeo")
    with pytest.raises(TrainingInterrupted) as stop:
        train(
            run,
            TrainOptions(base_model="tiny", num_train_epochs=2),
            callbacks=[StopAfterFirstEpoch()],
        )
    checkpoint = stop.value.checkpoint
    assert checkpoint is not None
    same = ["train", run, "--base-model", "tiny", "--num-train-epochs", 2, "--resume"]
    for changed, says in (
        (["--num-train-epochs", 0.5], "--num-train-epochs is 0.5, the interrupted run's 2 "),
        (["--max-steps", 1], "--max-steps is 1, the interrupted run's -1 "),
        (
            ["--learning-rate", 0.01, "--per-device-train-batch-size", 3],
            "--learning-rate is 0.01, the interrupted run's 0.001 ",
        ),
        (["--block-size", 16], "--block-size is 16, the interrupted run's the default "),
        (["--base-model", "sshleifer/tiny-gpt2"], "--base-model is sshleifer/tiny-gpt2"),
    ):
        result = run_cli(*same, *changed, expect=2)
        assert says in result.stderr and f"({checkpoint.name})" in result.stderr, result.stderr
        assert "start over without resuming" in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        if "--per-device-train-batch-size" in changed:  # every one that differs is named
            assert "; so do --per-device-train-batch-size: " in result.stderr
    assert (checkpoint / "trainer_state.json").is_file()
    assert not (run / "metrics.json").exists() and not (run / "model").exists()
    # How it runs may change (here: keep the checkpoints); what is learnt may not.
    run_cli(*same, "--keep-checkpoints")
    metrics = _metrics(run)
    assert metrics["resumed_from"] == checkpoint.name
    assert metrics["global_steps"] > int(checkpoint.name.split("-")[1])
    assert metrics["epochs_run"] == 2.0 and metrics["hyperparameters"]["num_train_epochs"] == 2
    assert [h["epoch"] for h in metrics["history"]] == [0.0, 1.0, 2.0]


# -- other bases and options ---------------------------------------------------------


def test_train_sources_end_to_end_with_early_stopping(tmp_path):
    run = tmp_path / "rj"
    result = run_cli(
        "train",
        "sample:romeo",
        "sample:juliet",
        "--out",
        run,
        "--base-model",
        "tiny",
        "--max-steps",
        4,
        "--early-stopping",
        "--seed",
        7,
    )  # inside the first epoch: this checks the flow and the recorded patience only
    assert "Training data" in result.stdout  # prepare ran first
    assert (run / "dataset" / "stats.json").is_file()
    metrics = _metrics(run)
    assert metrics["seed"] == 7 and metrics["hyperparameters"]["early_stopping_patience"] == 2
    assert (run / "model" / "model.safetensors").is_file()
    # train writes the card too (the table from stats.json, the samples, the picture).
    card = (run / "model" / "README.md").read_text("utf-8")
    assert "🤖 AI CYBORG 🤖" in card and "| Posts kept | 155 | 118 |" in card
    assert (run / "model" / "preview.png").is_file()
    assert f"Model card written to {run / 'model' / 'README.md'}" in result.stdout


def test_early_stopping_stops_once_the_validation_loss_stops_improving(prepared, tmp_path):
    """A learning rate far too high makes the validation loss worse after the first epoch:
    with patience 1, training stops an epoch later instead of running all ten, and the
    best epoch's model is the one kept."""
    run = _copy_run(prepared, tmp_path / "romeo")
    run_cli(
        "train", run, "--base-model", "tiny", "--num-train-epochs", 10, "--learning-rate", 0.5,
        "--early-stopping", 1, "--no-card",
    )  # fmt: skip
    metrics = _metrics(run)
    losses = [h["eval_loss"] for h in metrics["history"][1:]]
    assert metrics["epochs_run"] < 10
    assert metrics["epochs_run"] == len(losses)
    best = min(losses)
    assert losses[-1] > best  # it stopped because the last epoch did not improve
    assert metrics["best_epoch"] == float(losses.index(best) + 1)
    assert metrics["eval_loss_after"] == pytest.approx(best, rel=1e-4)


def test_lora_output_is_a_plain_merged_model(prepared, tmp_path):
    run = _copy_run(prepared, tmp_path / "romeo")
    run_cli("train", run, "--base-model", "tiny", "--lora", "--max-steps", 4, "--no-card")
    model_dir = run / "model"
    assert not (model_dir / "adapter_config.json").exists()
    with safe_open(str(model_dir / "model.safetensors"), "pt") as trained:
        keys = set(trained.keys())
        assert not any("lora" in k for k in keys)
        with safe_open(str(run / "tiny-base" / "model.safetensors"), "pt") as base:
            assert keys == set(base.keys())
            changed = [k for k in keys if not trained.get_tensor(k).equal(base.get_tensor(k))]
    assert changed and all("attn" in k for k in changed)  # LoRA's targets, merged in
    assert _metrics(run)["hyperparameters"]["lora"]["r"] == 16
    # Loads as a plain transformers model in a process where peft cannot be imported.
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "from transformers import AutoModelForCausalLM\n"
        "print(type(AutoModelForCausalLM.from_pretrained(sys.argv[1])).__name__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "GPT2LMHeadModel"


def test_two_processes_under_torchrun_prepare_once_and_write_one_model_and_card(tmp_path):
    """`torchrun` / `accelerate launch` run the command in every process: only the first
    prepares the SOURCEs (the others wait for its dataset) and saves the model, so only it
    may write the card (the others would find no model)."""
    run = tmp_path / "romeo"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = ["train", "sample:romeo", "--out", run, "--base-model", "tiny", "--max-steps", 2]
    proc = subprocess.run(
        [*torchrun, "-m", "huggingtweets", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Training data") == 1, proc.stdout  # one prepare, one table
    assert proc.stdout.count("Model card written to") == 1, proc.stdout
    for name in ("README.md", "model.safetensors"):
        assert (run / "model" / name).is_file(), name


# -- bad input -------------------------------------------------------------------------


def test_a_tracker_that_cannot_start_is_refused_before_anything_is_touched(prepared, tmp_path):
    """A --report-to typo, or a tracker not installed, after an interruption: refused at
    once, the interrupted run's checkpoints kept for --resume."""
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    missing = next(
        name
        for name in ("wandb", "mlflow", "tensorboard", "comet_ml")
        if name not in get_available_reporting_integrations()
    )
    run = _copy_run(prepared, tmp_path / "romeo")
    checkpoint = run / "checkpoints" / "checkpoint-7"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    for tracker, says in ((missing, "its package is not installed"), ("wandbb", "unknown")):
        result = run_cli("train", run, "--base-model", "tiny", "--report-to", tracker, expect=2)
        assert f"--report-to {tracker}: {says}" in result.stderr
        assert result.stderr.count("\n") == 1 and "Training on" not in result.stdout
    assert (checkpoint / "trainer_state.json").is_file()
    assert not (run / "tiny-base").exists()  # nothing built either
    result = run_cli(
        "train", "sample:romeo", "--out", tmp_path / "new", "--report-to", "x", expect=2
    )
    assert not (tmp_path / "new").exists()  # nor collected


def test_run_dir_without_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("train", tmp_path / "empty", "--base-model", "tiny", expect=2)
    assert "run `huggingtweets prepare" in result.stderr
    result = run_cli("train", tmp_path / "missing", expect=2)
    assert "no run directory" in result.stderr and "--out RUN_DIR" in result.stderr


def test_unknown_local_base_model(prepared):
    result = run_cli("train", prepared, "--base-model", "./no-such-model-folder", expect=2)
    assert "no such folder: ./no-such-model-folder" in result.stderr


def test_options_out_of_range(prepared):
    result = run_cli("train", prepared, "--base-model", "tiny", "--block-size", 4096, expect=2)
    assert "--block-size 4096 exceeds tiny's context of 256" in result.stderr
    result = run_cli("train", prepared, "--num-train-epochs", 0, expect=2)
    assert "--num-train-epochs" in result.stderr
    result = run_cli("train", prepared, "--precision", "fp8", expect=2)
    assert "--precision" in result.stderr
    # Refused by its choices, before anything is loaded (and before prepare, with SOURCEs).
    result = run_cli(
        "train", prepared, "--lr-scheduler-type", "sideways", "--base-model", "tiny", expect=2
    )
    assert "'sideways' is not one of" in result.stderr and "cosine" in result.stderr
    result = run_cli("train", prepared, "--base-model", "tiny", "--report-to", "nosuch", expect=2)
    assert "--report-to nosuch: unknown; one of none, all," in result.stderr
    result = run_cli("train", prepared, "--max-steps", -5, expect=2)
    assert "--max-steps must be 1 or more" in result.stderr
    with pytest.raises(HuggingtweetsError, match=r"dropout must be >=0, <1 \(got 1\)"):
        TrainOptions(dropout=1.0)
    result = run_cli("train", prepared, "sample:romeo", expect=2)
    assert "give one RUN_DIR, or SOURCEs with --out RUN_DIR" in result.stderr
    result = run_cli("train", prepared, "--text-column", "body", expect=2)
    assert "--text-column and the live options apply to SOURCEs" in result.stderr
    # Refused before training, not after it, when the card would be written.
    result = run_cli("train", prepared, "--base-model", "tiny", "--repo-id", "no good!", expect=2)
    assert "not a valid Hugging Face model id" in result.stderr
    assert "Training on" not in result.stdout


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel reports them (independent of torch)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("no CPU flags in /proc/cpuinfo")


def test_an_emulated_precision_is_warned_about():
    """--precision fp16 on a CPU without fp16 arithmetic (AMX-FP16) runs many times slower
    than what auto picks: say so. The expectation comes from the kernel's CPU flags."""
    import torch

    from huggingtweets.model.hardware import slow_precision_warning

    if torch.cuda.is_available():
        pytest.skip("a GPU computes these natively")
    flags = _cpu_flags()
    native = {
        "fp32": True,
        "bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
        "fp16": "amx_fp16" in flags,
    }
    for precision, is_native in native.items():
        warning = slow_precision_warning(precision)
        assert (warning is None) == is_native, precision
        if warning:
            assert f"no native {precision} arithmetic" in warning
