"""The train stage: fine-tune a causal LM on RUN_DIR/dataset/ into RUN_DIR/model/.

The original huggingtweets' recipe on transformers' ``Trainer``: ``<|endoftext|>``
before every post, posts packed into fixed-size blocks, AdamW at 1.372e-4 with a cosine
schedule and no warm-up for 4 epochs. Beyond it: evaluation before training and after
every epoch, the best checkpoint by validation loss kept, early stopping, LoRA, resume
after an interruption, and defaults that are fast on the user's hardware.

Being a ``Trainer``, it runs unchanged under ``accelerate launch`` / ``torchrun`` and
reports to whatever ``report_to`` names (``"none"`` by default).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import HuggingtweetsError
from .generate import DEFAULT_SETTINGS
from .memorization import build_guard
from .models import (
    check_weights,
    context_length,
    first_line,
    hidden_library_notice,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)
from .records import iter_jsonl
from .runs import RunDir, replace_dir, write_json

ORIGINAL_LEARNING_RATE = 1.372e-4
# A tiny base starts from random weights: the original's fine-tuning rate barely moves it.
# Measured on the demo's ROMEO & JULIET sample (validation loss of the best epoch): 2e-3
# stalls at 5.90, 1e-3 reaches 5.52 around epoch 9 and over-fits after it.
TINY_LEARNING_RATE = 1e-3
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Where a post-length text needs no more context, and where a CPU stays fastest:
# attention costs grow with the block, and 4 × 256 tokens per step is exactly the
# original's 1 × 1,024, so its learning rate and step count carry over unchanged.
DEFAULT_BLOCK_SIZE = 256
DEFAULT_BATCH_SIZE = 4
# glibc malloc: serve tensors up to 1 GiB from the heap, and keep up to 2 GiB of freed
# heap for reuse (both must fit a C int); see keep_freed_memory().
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 2**31 - 1
# Config fields that hold a dropout probability, across architectures.
DROPOUT_FIELDS = (
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout",
    "hidden_dropout_prob",
    "attention_dropout",
    "attention_probs_dropout_prob",
    "dropout",
)


@dataclass
class TrainOptions:
    """Training options; the names are transformers' ``TrainingArguments`` names."""

    base_model: str = "gpt2"  # a Hub id, a local folder, or "tiny"
    learning_rate: float | None = None  # None: 1.372e-4 (the original's); 1e-3 for tiny
    num_train_epochs: float = 4.0
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 0
    per_device_train_batch_size: int = DEFAULT_BATCH_SIZE
    gradient_accumulation_steps: int = 1
    block_size: int | None = None  # None: min(256, the model's context)
    precision: str = "auto"  # auto, fp32, bf16, fp16
    # Off by default: on a CPU, attention dropout alone halves the speed (it rules out
    # the fused attention kernel); the best-by-validation checkpoint and early stopping
    # guard against over-fitting instead. None keeps the base model's own values.
    dropout: float | None = 0.0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    early_stopping_patience: int | None = None
    seed: int = 42
    max_steps: int = -1  # > 0: stop after this many optimizer steps (quick tries)
    resume: bool = False
    keep_checkpoints: bool = False
    report_to: list[str] = field(default_factory=lambda: ["none"])
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.learning_rate is None or self.learning_rate > 0, "--learning-rate must be > 0"),
            (self.num_train_epochs > 0, "--num-train-epochs must be above 0"),
            (self.warmup_steps >= 0, "--warmup-steps must be 0 or more"),
            (self.per_device_train_batch_size >= 1, "--per-device-train-batch-size must be 1+"),
            (self.gradient_accumulation_steps >= 1, "--gradient-accumulation-steps must be 1+"),
            (self.block_size is None or self.block_size >= 8, "--block-size must be 8 or more"),
            (
                self.max_steps == -1 or self.max_steps >= 1,
                "--max-steps must be 1 or more (or -1: as many as the epochs take)",
            ),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.lora_r >= 1 and self.lora_alpha >= 1, "--lora-r and --lora-alpha must be 1+"),
            (
                self.early_stopping_patience is None or self.early_stopping_patience >= 1,
                "--early-stopping patience must be 1 or more epochs",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise HuggingtweetsError(message)
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        check_report_to(self.report_to)

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return TINY_LEARNING_RATE if self.base_model == "tiny" else ORIGINAL_LEARNING_RATE


def check_report_to(names: Sequence[str]) -> None:
    """Trackers Trainer knows and can start here, checked before anything is built."""
    trackers = [name for name in names if name not in ("none", "all")]
    if not trackers:
        return
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    for name in trackers:
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(["none", "all", *INTEGRATION_TO_CALLBACK])
            raise HuggingtweetsError(f"--report-to {name}: unknown; one of {known}")
        if name not in get_available_reporting_integrations():
            raise HuggingtweetsError(
                f"--report-to {name}: its package is not installed here (pip install it, "
                "then log in as it asks)"
            )


@dataclass
class TrainResult:
    run: RunDir
    model_dir: Path
    metrics: dict
    # False in the other processes of a multi-GPU run: only the first saves the model,
    # so only it may go on to the card (the others would find no model, or the old one).
    main_process: bool = True


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``resume=True`` continues from ``checkpoint``, the last
    complete one (the first Ctrl-C saves one; a second stops at once)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


# -- data ---------------------------------------------------------------------


def read_texts(path: Path) -> list[str]:
    return [row["text"] for _, row in iter_jsonl(path)]


def pack_blocks(texts: Sequence[str], tokenizer, block_size: int) -> tuple[list[list[int]], int]:
    """The original format: EOS before every post, all concatenated and cut into blocks.

    The last, shorter block is kept (the collator pads it) rather than dropped: with a
    few hundred posts, every post counts. Returns (blocks, number of tokens).
    """
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for post_ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        ids.append(eos)
        ids.extend(post_ids)
    blocks = [ids[i : i + block_size] for i in range(0, len(ids), block_size)]
    if blocks and len(blocks[-1]) < 2:  # a lone token teaches nothing
        blocks.pop()
    return blocks, len(ids)


class _Blocks:
    """A map-style dataset of token blocks (what Trainer's DataLoader needs)."""

    def __init__(self, blocks: list[list[int]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i]}


def _collate(pad_id: int):
    import torch

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            mask[i, :n] = 1
        labels = input_ids.masked_fill(mask == 0, -100)  # padding is not predicted
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return collate


# -- hardware -------------------------------------------------------------------


def _accelerator() -> str | None:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return None


def cpu_has_native_bf16() -> bool:
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(requested: str) -> str:
    """``auto``: bf16 where the hardware computes it natively, else fp16 on GPUs, else fp32.

    On a CPU without AVX512-BF16/AMX, bf16 is emulated and ~100× slower than fp32.
    """
    if requested != "auto":
        return requested
    import torch

    device = _accelerator()
    if device == "cuda":
        # Emulated bf16 (pre-Ampere GPUs) counts as supported by default, and is slow.
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device is None and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def cpu_computes_natively(precision: str) -> bool:
    import torch

    if precision == "bf16":
        return cpu_has_native_bf16()
    if precision == "fp16":
        return torch.cpu._is_amx_fp16_supported()
    return True


def _warn_slow_precision(precision: str) -> None:
    if _accelerator() is None and not cpu_computes_natively(precision):
        print(
            f"Warning: this CPU has no native {precision} arithmetic: it is emulated, far "
            f"slower than {resolve_precision('auto')} (what --precision auto picks here).",
            file=sys.stderr,
        )


def describe_device(precision: str) -> str:
    import torch

    if _accelerator() == "cuda":
        n = torch.cuda.device_count()
        return f"{n}× {torch.cuda.get_device_name(0)} ({precision})"
    if _accelerator() == "mps":
        return f"Apple MPS ({precision})"
    return f"CPU, {torch.get_num_threads()} threads ({precision})"


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    By default every tensor above 32 MiB (logits, embedding gradients) is a fresh mmap
    whose pages are faulted in and zeroed again on every step: on a 2-core CPU that
    halved the speed of a GPT-2 training step. Linux/glibc only; elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl ...): nothing to tune
        return
    # mallopt takes a C int: a larger value wraps (1 << 34 becomes 0, a trim threshold of
    # 0, which returns every freed page at once: the very slowness this avoids).
    m_trim_threshold, m_mmap_threshold = -1, -3
    for param, value in ((m_mmap_threshold, MMAP_THRESHOLD), (m_trim_threshold, TRIM_THRESHOLD)):
        if not libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)):
            print(f"Note: malloc did not accept setting {param} to {value}", file=sys.stderr)


# -- model --------------------------------------------------------------------


def _build_tiny(run: RunDir, options: TrainOptions, main_process: bool):
    """RUN_DIR/tiny-base/, built from the run's posts (kept on --resume), resolved."""
    from .tiny import build_tiny_base

    folder = run.root / "tiny-base"
    if main_process and not (options.resume and (folder / "config.json").exists()):
        texts = read_texts(run.train_path) + read_texts(run.valid_path)
        with replace_dir(folder) as tmp:
            build_tiny_base(texts, tmp, seed=options.seed)
    return resolve_model(folder)


def _load(resolved, options: TrainOptions, precision: str):
    import torch
    from transformers import AutoConfig

    tokenizer = load_tokenizer(resolved)
    try:
        config = AutoConfig.from_pretrained(
            resolved.location, local_files_only=resolved.local_files_only
        )
    except (OSError, ValueError) as exc:
        raise HuggingtweetsError(
            f"cannot read the config of {resolved.name}: {first_line(exc)}"
        ) from None
    if options.dropout is not None:
        for name in DROPOUT_FIELDS:
            if isinstance(getattr(config, name, None), float):
                setattr(config, name, options.dropout)
    # Full fine-tuning keeps fp32 master weights (autocast does the fast maths); a
    # frozen LoRA base may sit in the half-precision it computes in.
    dtype = torch.float32
    if options.lora and precision in ("bf16", "fp16") and _accelerator() is not None:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    model = load_causal_lm(resolved, trust_pickle=options.trust_pickle, config=config, dtype=dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "loss_type", None) is None:
        # transformers infers the loss from the class name, which GPT2LMHeadModel does not
        # spell as *ForCausalLM; it then warns and uses the causal LM loss anyway.
        model.loss_type = "ForCausalLM"
    return tokenizer, model


def _lora(model, options: TrainOptions, seed: int):
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(seed)  # the adapters' initial weights
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.dropout or 0.0,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise HuggingtweetsError(f"--lora cannot find where to attach adapters: {exc}") from None


# -- progress and interruption -------------------------------------------------


def _callbacks():
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossProgress(TrainerCallback):
        """One bar for the whole run: ETA, current loss, and each epoch's eval loss."""

        bar = None
        tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_start = state.num_input_tokens_seen or 0
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", epoch=f"{state.epoch:.2f}")

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.bar is not None and metrics and "eval_loss" in metrics:
                loss = metrics["eval_loss"]
                self.bar.write(
                    f"epoch {state.epoch:.2f}: eval loss {loss:.4f}, "
                    f"perplexity {_perplexity(loss):.2f}"
                )

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    class StopOnInterrupt(TrainerCallback):
        """Ctrl-C asks to stop after the current step, with a checkpoint to resume from."""

        requested = False

        def on_step_end(self, args, state, control, **kwargs):
            if self.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_epoch_end(self, args, state, control, **kwargs):
            # Stopping mid-epoch ends the epoch loop, and Trainer would then evaluate (and
            # save again) as at an epoch's end: minutes for a large model, for a user who
            # asked to stop. The checkpoint is saved; the best one is known from the
            # whole epochs. An interruption on an epoch's last step keeps its evaluation.
            if self.requested and state.epoch != round(state.epoch):
                control.should_evaluate = False
                control.should_save = False

    return LossProgress(), StopOnInterrupt()


@contextlib.contextmanager
def _sigint_requests(stopper):
    def handler(signum, frame):
        if stopper.requested:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        stopper.requested = True
        print(
            "\nStopping after this step and saving a checkpoint (Ctrl-C again to stop now)...",
            file=sys.stderr,
            flush=True,
        )

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def last_checkpoint(folder: Path) -> Path | None:
    """The latest complete checkpoint: Trainer writes trainer_state.json last, so a save
    cut short (a second Ctrl-C, a crash) is skipped."""
    if not folder.is_dir():
        return None
    complete = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


# -- results ------------------------------------------------------------------


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def epoch_history(log_history: list[dict], eval_before: float) -> list[dict]:
    """Per epoch: the eval loss, and the mean of the train losses logged during it."""
    history = [{"epoch": 0.0, "eval_loss": eval_before, "train_loss": None}]
    train_losses: list[tuple[float, float]] = [
        (entry["epoch"], entry["loss"]) for entry in log_history if "loss" in entry
    ]
    previous = 0.0
    for entry in log_history:
        if "eval_loss" not in entry:
            continue
        epoch = float(entry["epoch"])
        window = [loss for e, loss in train_losses if previous < e <= epoch + 1e-9]
        history.append(
            {
                "epoch": round(epoch, 4),
                "eval_loss": float(entry["eval_loss"]),
                "train_loss": sum(window) / len(window) if window else None,
            }
        )
        previous = epoch
    return history


def plot_loss_curve(history: list[dict], log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    steps = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e and "epoch" in e]
    if steps:
        ax.plot(*zip(*steps, strict=True), label="train loss", color="#9ab", linewidth=1)
    ax.plot(
        [h["epoch"] for h in history],
        [h["eval_loss"] for h in history],
        "o-",
        label="validation loss",
        color="#d62",
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _save_model(model, tokenizer, out: Path) -> None:
    """save_pretrained plus the settings the seed cards' pipeline snippet relies on."""
    eos = tokenizer.eos_token
    sampling = {"do_sample": True, **DEFAULT_SETTINGS}
    del sampling["prefix"]  # the base's own separator, which is <|endoftext|> for GPT-2
    model.config.task_specific_params = {"text-generation": {**sampling, "prefix": eos}}
    # transformers 5's pipeline reads the prefix from config.prefix and sampling settings
    # from generation_config.json; task_specific_params stays for the Hub and older code.
    model.config.prefix = eos
    generation = model.generation_config
    for key, value in sampling.items():
        setattr(generation, key, value)
    generation.pad_token_id = tokenizer.pad_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _quiet_library():
    """transformers' own bars (loading/writing weights at every checkpoint) would break
    up the training bar; ours stays, and so does the base model's download bar."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    downloads_shown = not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if downloads_shown:  # transformers' switch turns huggingface_hub's bars off too
        enable_progress_bars()
    # Trainer, reloading the best checkpoint, reports the output layer as missing when it
    # is tied to the input embeddings (GPT-2's case): it is not saved because it is shared.
    tied_head = "checkpoint model loaded: ['lm_head.weight']"
    try:
        with hidden_library_notice("transformers.trainer", tied_head):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# -- the stage ------------------------------------------------------------------


def train(
    run_dir: Path | str, options: TrainOptions | None = None, *, callbacks: Sequence = ()
) -> TrainResult:
    """Fine-tune ``options.base_model`` on RUN_DIR/dataset/ and write RUN_DIR/model/.

    Raises :class:`TrainingInterrupted` on Ctrl-C, naming the checkpoint to resume from.
    """
    options = options or TrainOptions()
    run = RunDir(Path(run_dir))
    if not run.train_path.exists() or not run.valid_path.exists():
        raise HuggingtweetsError(
            f"{run.root} has no dataset/: run `huggingtweets prepare SOURCE... --out "
            f"{run.root}` first (or `huggingtweets train SOURCE... --out {run.root}`)"
        )
    train_texts = read_texts(run.train_path)
    valid_texts = read_texts(run.valid_path)
    if not train_texts:
        raise HuggingtweetsError(f"{run.train_path} holds no posts: nothing to train on")
    if not valid_texts:
        raise HuggingtweetsError(
            f"{run.valid_path} holds no posts: prepare again with a "
            "--validation-split-percentage above 0"
        )
    resolved = None
    if options.base_model != "tiny":  # fail fast, before the heavy imports
        resolved = resolve_model(options.base_model)
        check_weights(resolved, options.trust_pickle)
    with _quiet_library():
        try:
            return _train(run, options, resolved, train_texts, valid_texts, callbacks)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
            # Said as TrainingInterrupted so the user hears of --resume: running again
            # without it starts over and deletes the checkpoints.
            raise TrainingInterrupted(last_checkpoint(run.root / "checkpoints")) from None


def _train(
    run: RunDir,
    options: TrainOptions,
    resolved,
    train_texts: list[str],
    valid_texts: list[str],
    callbacks: Sequence,
) -> TrainResult:
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    precision = resolve_precision(options.precision)
    _warn_slow_precision(precision)
    device = _accelerator()
    checkpoints = run.root / "checkpoints"
    if device is None:
        keep_freed_memory()

    try:
        args = TrainingArguments(
            output_dir=str(checkpoints),
            learning_rate=options.resolved_learning_rate,
            num_train_epochs=options.num_train_epochs,
            max_steps=options.max_steps,
            lr_scheduler_type=options.lr_scheduler_type,
            warmup_steps=options.warmup_steps,
            optim="adamw_torch_fused",
            per_device_train_batch_size=options.per_device_train_batch_size,
            per_device_eval_batch_size=options.per_device_train_batch_size,
            gradient_accumulation_steps=options.gradient_accumulation_steps,
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            use_cpu=device is None,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,  # with load_best_model_at_end: the best and the latest
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            logging_strategy="steps",
            logging_steps=1,
            report_to=options.report_to,
            seed=options.seed,
            label_names=["labels"],
            include_num_input_tokens_seen="all",
            dataloader_pin_memory=device == "cuda",
        )
    except (ValueError, ImportError) as exc:  # an unknown --lr-scheduler-type ...
        raise HuggingtweetsError(f"cannot train with these options: {first_line(exc)}") from None

    main_process = args.process_index == 0
    if resolved is None:
        with args.main_process_first(desc="tiny base model"):
            resolved = _build_tiny(run, options, main_process)
        base_kind = "tiny"
    else:
        base_kind = resolved.kind
    tokenizer, model = _load(resolved, options, precision)
    context = context_length(model.config) or min(tokenizer.model_max_length, 1024)
    block_size = options.block_size or min(DEFAULT_BLOCK_SIZE, context)
    if block_size > context:
        raise HuggingtweetsError(
            f"--block-size {block_size} exceeds {options.base_model}'s context of {context}"
        )
    train_blocks, train_tokens = pack_blocks(train_texts, tokenizer, block_size)
    valid_blocks, _ = pack_blocks(valid_texts, tokenizer, block_size)
    if options.lora:
        model = _lora(model, options, options.seed)

    last = last_checkpoint(checkpoints)
    if options.resume and last is None:
        print(f"No checkpoint in {checkpoints} yet: starting from the beginning.", file=sys.stderr)

    progress, stopper = _callbacks()
    extra = [progress, stopper, *callbacks]
    if options.early_stopping_patience:
        extra.append(EarlyStoppingCallback(early_stopping_patience=options.early_stopping_patience))
    try:
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_Blocks(train_blocks),
            eval_dataset=_Blocks(valid_blocks),
            data_collator=_collate(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=extra,
        )
    except (ValueError, RuntimeError, ImportError) as exc:  # a tracker that fails to start ...
        raise HuggingtweetsError(f"cannot set up training: {first_line(exc)}") from None
    trainer.remove_callback(ProgressCallback)  # ours shows the loss in the bar
    if not options.resume and checkpoints.exists() and main_process:
        # An earlier, abandoned run's (deleted only now that training can start): a Ctrl-C
        # from here on must not point at them.
        shutil.rmtree(checkpoints)

    eval_before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    with _sigint_requests(stopper):
        output = trainer.train(
            resume_from_checkpoint=str(last) if options.resume and last else None
        )
    train_seconds = time.perf_counter() - started
    if stopper.requested:
        raise TrainingInterrupted(last_checkpoint(checkpoints))
    log_history = list(trainer.state.log_history)
    history = epoch_history(log_history, eval_before)
    eval_after = trainer.evaluate()["eval_loss"]  # the best checkpoint, reloaded at the end
    best = min(history[1:] or history, key=lambda h: h["eval_loss"])
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0) - progress.tokens_at_start
    metrics = {
        "base_model": options.base_model,
        "base_model_type": base_kind,
        "seed": options.seed,
        "hyperparameters": {
            "learning_rate": options.resolved_learning_rate,
            "num_train_epochs": options.num_train_epochs,
            "max_steps": options.max_steps,
            "lr_scheduler_type": options.lr_scheduler_type,
            "warmup_steps": options.warmup_steps,
            "optimizer": "AdamW (torch, fused)",
            "weight_decay": args.weight_decay,
            "per_device_train_batch_size": options.per_device_train_batch_size,
            "gradient_accumulation_steps": options.gradient_accumulation_steps,
            "block_size": block_size,
            "precision": precision,
            "dropout": options.dropout,
            "lora": (
                {"r": options.lora_r, "alpha": options.lora_alpha, "merged": True}
                if options.lora
                else None
            ),
            "early_stopping_patience": options.early_stopping_patience,
        },
        "eval_loss_before": eval_before,
        "eval_loss_after": eval_after,
        "perplexity_before": _perplexity(eval_before),
        "perplexity_after": _perplexity(eval_after),
        "best_epoch": best["epoch"],
        "history": history,
        "train_tokens": train_tokens,
        "train_blocks": len(train_blocks),
        "valid_blocks": len(valid_blocks),
        "epochs_run": float(trainer.state.epoch or 0.0),
        "global_steps": trainer.state.global_step,
        "resumed_from": last.name if options.resume and last else None,
        "train_loss": output.training_loss,
        "timings": {
            "train_seconds": train_seconds,
            # This session's (a resumed run's second half only), per-epoch evals included.
            "tokens_per_second": tokens_seen / train_seconds if train_seconds else 0.0,
        },
        "device": describe_device(precision),
        "options": asdict(options),
    }
    main = trainer.is_world_process_zero()
    if main:
        final = trainer.model
        if options.lora:
            final = final.merge_and_unload()  # a plain model: the output needs no peft
        with replace_dir(run.model_dir) as tmp:
            _save_model(final, tokenizer, tmp)
            build_guard(train_texts, tmp)
            plot_loss_curve(history, log_history, tmp / "loss_curve.png")
        write_json(run.metrics_path, metrics)
        if not options.keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    # Under torchrun every process waits for the model to be written, then leaves the
    # process group: one that exits with it still open can abort ("terminate called
    # without an active exception"), failing the whole launch. A no-op in one process.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.state.destroy_process_group()
    return TrainResult(run, run.model_dir, metrics, main_process=main)
