"""The train stage: fine-tune a causal LM on RUN_DIR/dataset/ into RUN_DIR/model/.

The original huggingtweets' recipe on transformers' ``Trainer``: ``<|endoftext|>``
before every post, posts packed into fixed-size blocks, AdamW at 1.372e-4 with a cosine
schedule and no warm-up for 4 epochs. Beyond it: evaluation before training and after
every epoch, the best checkpoint by validation loss kept, early stopping, LoRA, resume
after an interruption, and defaults that are fast on the user's hardware.

The recipe reads top to bottom — :func:`train` checks, then ``_setup`` (precision, model,
data, Trainer) → ``_fit`` → ``_save`` — over small components: ``options`` (TrainOptions),
``resume`` (checkpoints and the options a resume repeats), ``hardware`` (device,
precision, allocator), ``packing`` (blocks of tokens), ``callbacks`` (events,
cancellation), ``qlora`` (the 4-bit base) and ``report`` (history, loss curve).

Being a ``Trainer``, it runs unchanged under ``accelerate launch`` / ``torchrun`` and
reports to whatever ``report_to`` names (``"none"`` by default). It changes nothing
process-wide that outlives the call: signals are the caller's (cancel through the
reporter), the allocator and the libraries' progress bars are restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError, options_to_dict
from huggingtweets.core.runs import (
    RunDir,
    StagedOutputs,
    check_writable_dir,
    replace_dir,
    training_lock,
    write_json,
)
from huggingtweets.generate.generator import DEFAULT_SETTINGS
from huggingtweets.model.hardware import (
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
from huggingtweets.train.options import (
    DEFAULT_BLOCK_SIZE,
    DROPOUT_FIELDS,
    NOT_HYPERPARAMETERS,
    STAGE,
    TrainOptions,
)
from huggingtweets.train.packing import Blocks, collate_blocks, pack_blocks, read_texts
from huggingtweets.train.qlora import (
    load_quantized,
    merge_saved_adapters,
    save_adapters,
)
from huggingtweets.train.report import epoch_history, perplexity, plot_loss_curve
from huggingtweets.train.resume import check_resume, last_checkpoint, record_options

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


# -- the stage ------------------------------------------------------------------


def train(
    run_dir: Path | str | RunDir,
    options: TrainOptions | None = None,
    *,
    output_dir: Path | str | None = None,
    reporter: Reporter | None = None,
    callbacks: Sequence = (),
    save_into: RunDir | None = None,
) -> TrainResult:
    """Fine-tune ``options.base_model`` on RUN_DIR/dataset/; write model/ and metrics.json
    into ``output_dir`` (default: the run directory itself; e.g. RUN_DIR/trials/<n>/),
    both swapped in together at the end. ``save_into``: the ``run`` of the caller's
    :class:`~huggingtweets.core.runs.StagedOutputs` instead, which the caller commits
    (with the card: see make_bot); the result then names the staged model.

    Progress goes to ``reporter`` (stage "train"); ``reporter.cancel()`` stops after the
    current step with a checkpoint and raises :class:`TrainingInterrupted`, naming it.
    ``callbacks`` are more ``TrainerCallback``\\ s (a tracker's, say).
    """
    options = options or TrainOptions()
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if output_dir is not None:
        run = run.with_output(output_dir)
    inputs = _inputs(run, options, reporter)  # checked before anything is written
    check_writable_dir(run.output_dir)
    with training_lock(run.output_dir):  # one training at a time per output folder
        if save_into is not None:
            return _train(run, options, reporter, callbacks, inputs, save_into)
        with StagedOutputs(run) as staged:
            result = _train(run, options, reporter, callbacks, inputs, staged.run)
            staged.commit()
    return dataclasses.replace(result, run=run, model_dir=run.model_dir)


def _inputs(run: RunDir, options: TrainOptions, reporter: Reporter) -> tuple:
    """(training texts, validation texts, speaker rows, the resolved base), checked."""
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
            # One post of an account is all trained on (none held out), and a split of 0
            # holds none out: both mended by `prepare`. (serve.messages says it the API's way.)
            f"{run.valid_path} holds no posts to measure the training on: prepare again "
            "with two posts or more per account and a --validation-split-percentage above 0"
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
    return train_texts, valid_texts, speaker_rows, resolved


def _train(
    run: RunDir,
    options: TrainOptions,
    reporter: Reporter,
    callbacks: Sequence,
    inputs: tuple,
    save: RunDir,
) -> TrainResult:
    """train's work, the model and metrics saved into ``save`` (a staging run)."""
    train_texts, valid_texts, speaker_rows, resolved = inputs
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
            return _save(setup, fitted, options, train_texts, reporter, save)
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
        record_options(run.checkpoints_dir, options)
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
    params = {k: v for k, v in options_to_dict(options).items() if k not in NOT_HYPERPARAMETERS}
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
    save: RunDir,
) -> TrainResult:
    """The best model, its guard and loss curve, metrics.json into ``save`` (a staging
    run, swapped in afterwards); checkpoints removed."""
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
        with replace_dir(save.model_dir) as tmp:
            _write_model(setup, options, tmp)
            build_guard(train_texts, tmp)
            plot_loss_curve(fitted.history, fitted.log_history, tmp / "loss_curve.png")
        write_json(save.metrics_path, metrics)
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
    return TrainResult(save, save.model_dir, metrics, main_process=main)


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
