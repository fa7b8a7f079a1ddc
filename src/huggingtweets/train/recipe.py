"""The train stage: fine-tune a causal LM on RUN_DIR/dataset/ into RUN_DIR/model/.

The original huggingtweets' recipe on transformers' ``Trainer``: ``<|endoftext|>``
before every post, posts packed into fixed-size blocks, AdamW at 1.372e-4 with a cosine
schedule and no warm-up for 4 epochs. Beyond it: evaluation before training and after
every epoch, the best checkpoint by validation loss kept, early stopping, LoRA, resume
after an interruption, and defaults that are fast on the user's hardware.

The recipe reads top to bottom — :func:`train` checks, then ``_setup`` (precision, model,
data, Trainer) → ``_fit`` → ``_save`` — over small components: ``hardware`` (device,
precision, allocator), ``packing`` (blocks of tokens), ``callbacks`` (events,
cancellation) and ``report`` (history, loss curve).

Being a ``Trainer``, it runs unchanged under ``accelerate launch`` / ``torchrun`` and
reports to whatever ``report_to`` names (``"none"`` by default). It changes nothing
process-wide that outlives the call: signals are the caller's (cancel through the
reporter), the allocator and the libraries' progress bars are restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Reporter, reporter_or_silent
from huggingtweets.core.options import MAX_SEED, OptionError, check_options, option, options_to_dict
from huggingtweets.core.runs import RunDir, replace_dir, write_json
from huggingtweets.generate.generator import DEFAULT_SETTINGS
from huggingtweets.model.hardware import (
    PRECISIONS,
    accelerator,
    check_training_memory,
    cpu_computes_natively,
    describe_device,
    freed_memory_kept,
    keep_freed_memory,
    resolve_precision,
    slow_precision_warning,
)
from huggingtweets.model.loading import (
    check_weights,
    context_length,
    first_line,
    hidden_library_notice,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)
from huggingtweets.model.memorization import build_guard
from huggingtweets.train.packing import Blocks, collate_blocks, pack_blocks, read_texts
from huggingtweets.train.qlora import (
    check_qlora_here,
    load_quantized,
    merge_saved_adapters,
    save_adapters,
)
from huggingtweets.train.report import epoch_history, perplexity, plot_loss_curve

__all__ = [
    "TrainOptions",
    "TrainResult",
    "TrainingInterrupted",
    "cpu_computes_natively",
    "epoch_history",
    "keep_freed_memory",
    "pack_blocks",
    "save_model",
    "train",
]

STAGE = "train"
ORIGINAL_LEARNING_RATE = 1.372e-4
# A tiny base starts from random weights: the original's fine-tuning rate barely moves it.
# Measured on the demo's ROMEO & JULIET sample (validation loss of the best epoch): 2e-3
# stalls at 5.90, 1e-3 reaches 5.52 around epoch 9 and over-fits after it.
TINY_LEARNING_RATE = 1e-3
# Where a post-length text needs no more context, and where a CPU stays fastest:
# attention costs grow with the block, and 4 × 256 tokens per step is exactly the
# original's 1 × 1,024, so its learning rate and step count carry over unchanged.
DEFAULT_BLOCK_SIZE = 256
DEFAULT_BATCH_SIZE = 4
# transformers' schedules that need no arguments beyond warm-up and length.
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
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
# Options that say how to run, not what is learnt: not shown as hyper-parameters.
_NOT_HYPERPARAMETERS = (
    "base_model",
    "qlora",  # these three are told by "lora"
    "save_adapters",
    "seed",
    "resume",
    "keep_checkpoints",
    "report_to",
    "trust_pickle",
    "lora_r",
    "lora_alpha",
)


MAX_STEPS = 100_000_000


@dataclass
class TrainOptions:
    """Training options; the names are transformers' ``TrainingArguments`` names."""

    base_model: str = option(
        "gpt2",
        metavar="ID|PATH|tiny",
        help="A Hugging Face causal LM id, a local model folder, or 'tiny' (built offline "
        "from the run's own posts).",
    )
    learning_rate: float | None = option(
        None,
        min=0,
        min_open=True,
        max=1,
        help="Peak learning rate.",
        default_help="1.372e-4, the original's; 1e-3 for tiny",
    )
    num_train_epochs: float = option(
        4.0, min=0, min_open=True, max=100_000, help="Passes over the training posts."
    )
    # Bounded like the epochs: 10^8 steps is years on any machine, and far larger counts
    # overflow the scheduler's arithmetic instead of failing in one line.
    max_steps: int = option(
        -1,
        max=MAX_STEPS,
        help="Stop after this many optimizer steps (overrides the epochs when > 0).",
    )
    lr_scheduler_type: str = option(
        "cosine", choices=LR_SCHEDULERS, help="The learning-rate schedule."
    )
    warmup_steps: int = option(0, min=0, max=MAX_STEPS, help="Steps of linear warm-up.")
    per_device_train_batch_size: int = option(
        DEFAULT_BATCH_SIZE, min=1, max=65_536, help="Blocks per step and device."
    )
    gradient_accumulation_steps: int = option(
        1, min=1, max=65_536, help="Steps whose gradients add up to one update."
    )
    block_size: int | None = option(
        None,
        min=8,
        max=1 << 20,
        help="Tokens per training block.",
        default_help="256, or the model's context if shorter",
    )
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="auto: bf16 where the hardware computes it natively (recent GPUs, CPUs with "
        "AVX512-BF16/AMX), fp16 on older GPUs, else fp32.",
    )
    # Off by default: on a CPU, attention dropout alone halves the speed (it rules out
    # the fused attention kernel); the best-by-validation checkpoint and early stopping
    # guard against over-fitting instead. None keeps the base model's own values.
    dropout: float | None = option(
        0.0,
        min=0,
        max=1,
        max_open=True,
        help="Dropout while training (attention dropout halves the speed on a CPU).",
        none_flag=("--keep-base-dropout", "Keep the base model's own dropout."),
    )
    # Off by default: the original's loss. Hans et al. (2024) drop 1 in 4 (k = 4).
    goldfish_k: int | None = option(
        None,
        min=2,
        max=1000,
        flag="--goldfish",
        flag_value=4,
        metavar="[K]",
        help="Goldfish loss: leave 1 in K tokens out of the loss (chosen by the tokens "
        "before it), so that posts are not learnt verbatim (default 4).",
    )
    # Off by default: the original's format. See speakers.py.
    speaker_tokens: bool = option(
        False,
        help="A bot of 2-3 accounts: a special token per account before each of its posts, "
        "so that `generate --as HANDLE` writes as one of them.",
    )
    lora: bool = option(False, help="Train LoRA adapters (peft), merged on save.")
    # Dettmers et al. 2023: the LoRA options apply; CUDA only (bitsandbytes' kernels).
    qlora: bool = option(
        False,
        help="QLoRA: LoRA adapters on the base loaded in 4-bit (NF4, bf16 compute), merged "
        "onto the unquantized base on save. Needs an NVIDIA GPU and bitsandbytes.",
    )
    save_adapters: bool = option(
        False,
        help="With --lora or --qlora: save the adapters alone (peft's format, naming the "
        "base) instead of a merged model.",
    )
    lora_r: int = option(16, min=1, max=4096, help="LoRA rank.")
    lora_alpha: int = option(32, min=1, max=1 << 16, help="LoRA scaling (alpha).")
    early_stopping_patience: int | None = option(
        None,
        min=1,
        flag="--early-stopping",
        flag_value=2,
        metavar="[PATIENCE]",
        help="Stop when the validation loss has not improved for PATIENCE epochs (default 2).",
    )
    seed: int = option(42, min=0, max=MAX_SEED, help="Seed of the initialisation and order.")
    resume: bool = option(False, help="Continue an interrupted run from its last checkpoint.")
    keep_checkpoints: bool = option(False, help="Keep the checkpoints/ folder after success.")
    report_to: list[str] = option(
        default_factory=lambda: ["none"],
        metavar="NAME",
        help="Where Trainer reports: none, wandb, tensorboard, mlflow ... (repeat, or "
        "separate with commas).",
    )
    trust_pickle: bool = option(
        False,
        help="Allow a base whose weights are only in pickle form (*.bin, *.pt): they can run code.",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.max_steps < 1 and self.max_steps != -1:
            raise OptionError("max_steps", "must be 1 or more (or -1: as many as the epochs take)")
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        names = [n.strip() for name in self.report_to for n in name.split(",")]
        self.report_to = [n for n in names if n] or ["none"]
        check_report_to(self.report_to)
        self._check_adapters()

    def _check_adapters(self) -> None:
        if self.qlora and self.lora:
            raise OptionError(
                "qlora", "already trains LoRA adapters (on a 4-bit base): give it without lora"
            )
        if self.qlora and self.precision in ("fp16", "fp32"):
            raise OptionError(
                "precision", f"{self.precision} conflicts with qlora, which computes in bf16"
            )
        if self.save_adapters and not (self.lora or self.qlora):
            raise OptionError("save_adapters", "applies with lora or qlora")
        if self.save_adapters and self.speaker_tokens:
            # The speakers are recorded in config.json, which adapters alone do not have.
            raise OptionError("save_adapters", "cannot keep speaker_tokens: save merged")
        if self.qlora:
            check_qlora_here()  # before anything is collected, prepared or loaded

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
            raise OptionError("report_to", f"{name}: unknown; one of {known}")
        if name not in get_available_reporting_integrations():
            raise OptionError(
                "report_to",
                f"{name}: its package is not installed here (pip install it, then log in "
                "as it asks)",
            )


@dataclass
class TrainResult:
    run: RunDir
    model_dir: Path
    metrics: dict
    # False in the other processes of a multi-GPU run: only the first saves the model,
    # so only it may go on to the card (the others would find no model, or the old one).
    main_process: bool = True


class TrainingInterrupted(Cancelled):
    """Training stopped on request (cancel, Ctrl-C); ``resume=True`` continues from
    ``checkpoint``, the last complete one."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


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


# In checkpoints/: the options its checkpoints are made with (written before the first).
RESUME_OPTIONS_FILE = "options.json"
# What may change when a run is resumed: how it runs and reports, not what is learnt nor
# on which schedule. Anything else differing is refused: a checkpoint continued with other
# epochs, steps, rates or batch sizes "finishes" at once or follows a schedule nobody
# chose, and metrics.json would name settings the model never trained with.
_MAY_CHANGE_ON_RESUME = (
    "resume",
    "keep_checkpoints",
    "report_to",
    "trust_pickle",
    "save_adapters",
    "precision",  # another machine may compute otherwise
)


def _recorded_options(options: TrainOptions) -> dict[str, Any]:
    """The options that a resume must repeat, as plain data (the learning rate resolved:
    the default given or not is one rate)."""
    recorded = options_to_dict(options)
    recorded["learning_rate"] = options.resolved_learning_rate
    return {k: v for k, v in recorded.items() if k not in _MAY_CHANGE_ON_RESUME}


def _shown(value: Any) -> str:
    if value is None:
        return "the default"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_resume(checkpoints_dir: Path, options: TrainOptions) -> Path | None:
    """With ``options.resume``: the checkpoint to continue from (None: none yet), once the
    options that say what is learnt and on which schedule (base model, epochs, steps,
    learning rate, batch size, block size, LoRA ...) are those it was made with; else an
    OptionError naming the first that differs (the others listed), in one line."""
    last = last_checkpoint(checkpoints_dir) if options.resume else None
    if last is None:
        return None
    try:
        recorded = json.loads((checkpoints_dir / RESUME_OPTIONS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return last  # made by an older version, which did not record them: not checked
    if not isinstance(recorded, dict):
        return last
    given = _recorded_options(options)
    differ = [k for k, v in given.items() if k in recorded and recorded[k] != v]
    if not differ:
        return last
    name = differ[0]
    others = f"; so do {', '.join(differ[1:])}" if differ[1:] else ""
    raise OptionError(
        name,
        f"is {_shown(given[name])}, the interrupted run's {_shown(recorded[name])} "
        f"({last.name}){others}: resuming continues with the options the run started "
        "with; give the same ones, or start over without resuming",
    )


# -- the stage ------------------------------------------------------------------


def train(
    run_dir: Path | str | RunDir,
    options: TrainOptions | None = None,
    *,
    output_dir: Path | str | None = None,
    reporter: Reporter | None = None,
    callbacks: Sequence = (),
) -> TrainResult:
    """Fine-tune ``options.base_model`` on RUN_DIR/dataset/; write model/ and metrics.json
    into ``output_dir`` (default: the run directory itself; e.g. RUN_DIR/trials/<n>/).

    Progress goes to ``reporter`` (stage "train"); ``reporter.cancel()`` stops after the
    current step with a checkpoint and raises :class:`TrainingInterrupted`, naming it.
    ``callbacks`` are more ``TrainerCallback``\\ s (a tracker's, say).
    """
    options = options or TrainOptions()
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if output_dir is not None:
        run = run.with_output(output_dir)
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
            "validation_split_percentage above 0"
        )
    speaker_rows = _speaker_rows(run) if options.speaker_tokens else None  # checked early
    check_resume(run.checkpoints_dir, options)  # before anything is loaded or built
    resolved = None
    if options.base_model != "tiny":  # fail fast, before the heavy imports
        resolved = resolve_model(options.base_model)
        check_weights(resolved, options.trust_pickle)
        memory = check_training_memory(resolved, options)  # from config.json: refused early
        if memory:
            reporter.info(STAGE, memory)
    run.remove_stale_temporaries()
    with _quiet_library(), freed_memory_kept() if accelerator() is None else _nothing():
        try:
            setup = _setup(
                run,
                options,
                resolved,
                train_texts,
                valid_texts,
                reporter,
                callbacks,
                speaker_rows=speaker_rows,
            )
            fitted = _fit(setup, options, reporter)
            return _save(setup, fitted, options, train_texts, reporter)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
            # Said as TrainingInterrupted so the user hears of --resume: running again
            # without it starts over and deletes the checkpoints.
            raise TrainingInterrupted(last_checkpoint(run.checkpoints_dir)) from None


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass
class _Setup:
    """What ``_setup`` builds: everything ``_fit`` and ``_save`` need."""

    run: RunDir
    trainer: Any
    tokenizer: Any
    progress: Any
    precision: str
    block_size: int
    base_kind: str
    train_tokens: int
    train_blocks: int
    valid_blocks: int
    resume_from: Path | None
    speakers: list | None = None  # speakers.Speaker, with --speaker-tokens
    base: Any = None  # loading.ResolvedModel: a QLoRA run's adapters are merged onto it


@dataclass
class _Fitted:
    eval_before: float
    eval_after: float
    train_seconds: float
    history: list[dict]
    log_history: list[dict]
    training_loss: float
    tokens_seen: int


def _setup(
    run: RunDir,
    options: TrainOptions,
    resolved,
    train_texts: list[str],
    valid_texts: list[str],
    reporter: Reporter,
    callbacks: Sequence,
    *,
    speaker_rows: tuple | None = None,
) -> _Setup:
    """Precision, arguments, model and tokenizer, packed data, the Trainer."""
    from huggingtweets.train.callbacks import ProgressEvents, StopOnCancel

    # QLoRA computes in bf16 (emulated, slowly, on GPUs older than Ampere).
    precision = "bf16" if options.qlora else resolve_precision(options.precision)
    warning = slow_precision_warning(precision)
    if warning:
        reporter.warning(STAGE, warning)
    args = _training_arguments(run, options, precision)
    main_process = args.process_index == 0
    base_kind = "tiny" if resolved is None else resolved.kind
    if resolved is None:
        with args.main_process_first(desc="tiny base model"):
            resolved = _build_tiny(run, options, train_texts, main_process)
    reporter.info(STAGE, f"loading {resolved.name}")
    tokenizer, model = _load(resolved, options, precision)
    block_size = _block_size(model, tokenizer, options)
    speakers, speaker_ids, train_speakers, valid_speakers = _speaker_tokens(
        speaker_rows, tokenizer, model
    )
    train_blocks, train_tokens = pack_blocks(train_texts, tokenizer, block_size, train_speakers)
    valid_blocks, _ = pack_blocks(valid_texts, tokenizer, block_size, valid_speakers)
    if options.lora or options.qlora:
        model = _lora(model, options, options.seed, trainable_tokens=speaker_ids)

    last = check_resume(run.checkpoints_dir, options)
    if options.resume and last is None:
        reporter.info(
            STAGE, f"no checkpoint in {run.checkpoints_dir} yet: starting from the beginning"
        )
    progress = ProgressEvents(reporter)
    trainer = _trainer(
        model,
        args,
        tokenizer,
        _train_dataset(train_blocks, tokenizer, options),
        Blocks(valid_blocks),
        [progress, StopOnCancel(reporter), *callbacks],
        options.early_stopping_patience,
    )
    if not options.resume and run.checkpoints_dir.exists() and main_process:
        # An earlier, abandoned run's (deleted only now that training can start): a Ctrl-C
        # from here on must not point at them.
        shutil.rmtree(run.checkpoints_dir)
    if last is None and main_process:  # what a later resume must repeat
        run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        write_json(run.checkpoints_dir / RESUME_OPTIONS_FILE, _recorded_options(options))
    return _Setup(
        run,
        trainer,
        tokenizer,
        progress,
        precision,
        block_size,
        base_kind,
        train_tokens,
        len(train_blocks),
        len(valid_blocks),
        last,
        speakers,
        resolved,
    )


def _block_size(model, tokenizer, options: TrainOptions) -> int:
    """Tokens per training block: the option, else DEFAULT_BLOCK_SIZE; never past the
    model's context."""
    context = context_length(model.config) or min(tokenizer.model_max_length, 1024)
    block_size = options.block_size or min(DEFAULT_BLOCK_SIZE, context)
    if block_size > context:
        raise OptionError(
            "block_size", f"{block_size} exceeds {options.base_model}'s context of {context}"
        )
    return block_size


def _speaker_tokens(speaker_rows: tuple | None, tokenizer, model) -> tuple:
    """With --speaker-tokens: (speakers, their new token ids, the speaker token of each
    training row, of each validation row), the tokens added to ``tokenizer`` and
    ``model``; else Nones. A validation account unseen in training gets end-of-text."""
    if speaker_rows is None:
        return None, None, None, None
    from huggingtweets.model.speakers import add_speaker_tokens

    speakers, train_handles, valid_handles = speaker_rows
    speaker_ids = add_speaker_tokens(tokenizer, model, speakers)
    id_of = {s.handle: i for s, i in zip(speakers, speaker_ids, strict=True)}
    train_speakers = [id_of[h] for h in train_handles]
    valid_speakers = [id_of.get(h, tokenizer.eos_token_id) for h in valid_handles]
    return speakers, speaker_ids, train_speakers, valid_speakers


def _trainer(
    model,
    args,
    tokenizer,
    train_dataset,
    eval_dataset,
    callbacks: list,
    early_stopping_patience: int | None,
):
    """transformers' Trainer over our data, reporting through ``callbacks`` alone."""
    from transformers import EarlyStoppingCallback, Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if early_stopping_patience:
        callbacks = [
            *callbacks,
            EarlyStoppingCallback(early_stopping_patience=early_stopping_patience),
        ]
    try:
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collate_blocks(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    except (ValueError, RuntimeError, ImportError) as exc:  # a tracker that fails to start ...
        raise HuggingtweetsError(f"cannot set up training: {first_line(exc)}") from None
    for printer in (ProgressCallback, PrinterCallback):  # the events carry the progress
        trainer.remove_callback(printer)
    return trainer


def _speaker_rows(run: RunDir) -> tuple:
    """(speakers, the account of each training row, of each validation row)."""
    from huggingtweets.model.speakers import dataset_handles, training_speakers

    train_handles = dataset_handles(run.train_path)
    return training_speakers(train_handles), train_handles, dataset_handles(run.valid_path)


def _train_dataset(blocks: list[list[int]], tokenizer, options: TrainOptions):
    if not options.goldfish_k:
        return Blocks(blocks)
    from huggingtweets.train.goldfish import GoldfishBlocks

    return GoldfishBlocks(blocks, tokenizer.eos_token_id, options.goldfish_k)


def _training_arguments(run: RunDir, options: TrainOptions, precision: str):
    from transformers import TrainingArguments

    device = accelerator()
    try:
        return TrainingArguments(
            output_dir=str(run.checkpoints_dir),
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
            disable_tqdm=True,  # progress travels as events
        )
    except (ValueError, ImportError) as exc:  # fp16 on a CPU without support ...
        raise HuggingtweetsError(f"cannot train with these options: {first_line(exc)}") from None


def _fit(setup: _Setup, options: TrainOptions, reporter: Reporter) -> _Fitted:
    """Evaluate, train (resuming when asked), evaluate the best checkpoint."""
    trainer = setup.trainer
    reporter.info(STAGE, "evaluating the base model")
    eval_before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    resume = str(setup.resume_from) if setup.resume_from else None
    with reporter.cooperative():
        output = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - started
    if reporter.cancelled:
        raise TrainingInterrupted(last_checkpoint(setup.run.checkpoints_dir))
    log_history = list(trainer.state.log_history)
    eval_after = trainer.evaluate()["eval_loss"]  # the best checkpoint, reloaded at the end
    tokens = int(trainer.state.num_input_tokens_seen or 0) - setup.progress.tokens_at_start
    return _Fitted(
        eval_before,
        eval_after,
        train_seconds,
        epoch_history(log_history, eval_before),
        log_history,
        output.training_loss,
        tokens,
    )


def hyperparameters(options: TrainOptions, setup: _Setup) -> dict:
    """What was learnt with: the options as resolved, and what the recipe fixes."""
    params = {k: v for k, v in options_to_dict(options).items() if k not in _NOT_HYPERPARAMETERS}
    params.update(
        learning_rate=options.resolved_learning_rate,
        optimizer="AdamW (torch, fused)",
        weight_decay=setup.trainer.args.weight_decay,
        block_size=setup.block_size,
        precision=setup.precision,
        lora=(
            {
                "r": options.lora_r,
                "alpha": options.lora_alpha,
                "merged": not options.save_adapters,
                **({"quantization": "nf4"} if options.qlora else {}),  # the base it trained on
            }
            if options.lora or options.qlora
            else None
        ),
    )
    return params


def _save(
    setup: _Setup,
    fitted: _Fitted,
    options: TrainOptions,
    train_texts: list[str],
    reporter: Reporter,
) -> TrainResult:
    """The best model, its guard and loss curve, metrics.json; checkpoints removed."""
    trainer, run = setup.trainer, setup.run
    best = min(fitted.history[1:] or fitted.history, key=lambda h: h["eval_loss"])
    metrics = {
        "base_model": options.base_model,
        "base_model_type": setup.base_kind,
        "seed": options.seed,
        "hyperparameters": hyperparameters(options, setup),
        "eval_loss_before": fitted.eval_before,
        "eval_loss_after": fitted.eval_after,
        "perplexity_before": perplexity(fitted.eval_before),
        "perplexity_after": perplexity(fitted.eval_after),
        "best_epoch": best["epoch"],
        "history": fitted.history,
        "train_tokens": setup.train_tokens,
        "train_blocks": setup.train_blocks,
        "valid_blocks": setup.valid_blocks,
        "epochs_run": float(trainer.state.epoch or 0.0),
        "global_steps": trainer.state.global_step,
        "resumed_from": setup.resume_from.name if setup.resume_from else None,
        "train_loss": fitted.training_loss,
        "timings": {
            "train_seconds": fitted.train_seconds,
            # This session's (a resumed run's second half only), per-epoch evals included.
            "tokens_per_second": (
                fitted.tokens_seen / fitted.train_seconds if fitted.train_seconds else 0.0
            ),
        },
        "device": describe_device(setup.precision),
        "options": options_to_dict(options),
    }
    main = trainer.is_world_process_zero()
    if main:
        reporter.info(STAGE, f"saving the model to {run.model_dir}")
        with replace_dir(run.model_dir) as tmp:
            _write_model(setup, options, tmp)
            build_guard(train_texts, tmp)
            plot_loss_curve(fitted.history, fitted.log_history, tmp / "loss_curve.png")
        write_json(run.metrics_path, metrics)
        if not options.keep_checkpoints:
            shutil.rmtree(run.checkpoints_dir, ignore_errors=True)
    # Under torchrun every process waits for the model to be written, then leaves the
    # process group: one that exits with it still open can abort ("terminate called
    # without an active exception"), failing the whole launch. A no-op in one process.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.state.destroy_process_group()
    if main:
        # Adapters alone load with peft (AutoPeftModelForCausalLM), not as a plain model.
        what = "LoRA adapters (for peft)" if options.save_adapters else "model"
        reporter.end(STAGE, f"{what} written to {run.model_dir}", metrics=metrics)
    return TrainResult(run, run.model_dir, metrics, main_process=main)


def _write_model(setup: _Setup, options: TrainOptions, out: Path) -> None:
    """The trained model into ``out``: a plain model (adapters merged: the output needs no
    peft), or with save_adapters the adapters alone."""
    model, tokenizer = setup.trainer.model, setup.tokenizer
    if options.save_adapters:
        save_adapters(model, tokenizer, out)
        return
    if options.qlora:  # onto the base unquantized: see qlora.py
        adapters = out / "adapters"
        model.save_pretrained(adapters)
        model = merge_saved_adapters(
            adapters,
            setup.base,
            tokenizer,
            trust_pickle=options.trust_pickle,
            speakers=setup.speakers,
        )
        shutil.rmtree(adapters)
    elif options.lora:
        model = model.merge_and_unload()
    save_model(model, tokenizer, out, speakers=setup.speakers)


# -- model ----------------------------------------------------------------------


def _build_tiny(run: RunDir, options: TrainOptions, train_texts: list[str], main_process: bool):
    """RUN_DIR/tiny-base/, built from the run's training posts only (the validation posts
    must stay unseen, by the tokenizer too); kept on --resume."""
    from huggingtweets.model.tiny import build_tiny_base

    folder = run.output_dir / "tiny-base"
    if main_process and not (options.resume and (folder / "config.json").exists()):
        with replace_dir(folder) as tmp:
            build_tiny_base(train_texts, tmp, seed=options.seed)
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
    if options.lora and precision in ("bf16", "fp16") and accelerator() is not None:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if options.qlora:
        model = load_quantized(resolved, config, trust_pickle=options.trust_pickle)
    else:
        model = load_causal_lm(
            resolved, trust_pickle=options.trust_pickle, config=config, dtype=dtype
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "loss_type", None) is None:
        # transformers infers the loss from the class name, which GPT2LMHeadModel does not
        # spell as *ForCausalLM; it then warns and uses the causal LM loss anyway.
        model.loss_type = "ForCausalLM"
    return tokenizer, model


def _lora(model, options: TrainOptions, seed: int, *, trainable_tokens: list[int] | None = None):
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    from huggingtweets.model.architectures import lora_target_modules

    set_seed(seed)  # the adapters' initial weights
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.dropout or 0.0,
        target_modules=lora_target_modules(model),  # per architecture (peft's by type)
        # The speaker tokens' new embedding rows (and their tied output rows): trained in
        # full and merged on save, the rest of the embeddings stays frozen.
        trainable_token_indices=list(trainable_tokens) if trainable_tokens else None,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise OptionError("lora", f"cannot find where to attach adapters: {exc}") from None


def save_model(model, tokenizer, out: Path, *, speakers: Sequence | None = None) -> None:
    """save_pretrained plus the settings the seed cards' pipeline snippet relies on (and
    the speakers of a model trained with speaker tokens)."""
    eos = tokenizer.eos_token
    sampling = {"do_sample": True, **DEFAULT_SETTINGS}
    del sampling["prefix"]  # the base's own separator, which is <|endoftext|> for GPT-2
    model.config.task_specific_params = {"text-generation": {**sampling, "prefix": eos}}
    if speakers:
        from huggingtweets.model.speakers import record_speakers

        record_speakers(model.config, speakers)
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
    up the progress events; the base model's download bar stays. Restored afterwards."""
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
