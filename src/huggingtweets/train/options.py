"""The train stage's options: each defined once (default, range, help) on TrainOptions, from
which the CLI's flags, ``--config`` files and the server's training body are derived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from huggingtweets.core.options import MAX_SEED, OptionError, check_options, option
from huggingtweets.model.hardware import (
    PRECISIONS,
)
from huggingtweets.train.qlora import (
    check_qlora_here,
)

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
NOT_HYPERPARAMETERS = (
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
        max=1000,
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
