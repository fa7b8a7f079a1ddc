"""The API's bodies and answers. The training and generate bodies are derived from the
option specs of :class:`~huggingtweets.train.recipe.TrainOptions` and
:class:`~huggingtweets.serve.requests.GenerateRequest` (defaults, ranges, choices, help):
each limit is written once, and the library's checks still run behind pydantic's."""

from __future__ import annotations

import dataclasses
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from huggingtweets.core.options import OptionSpec, option_specs
from huggingtweets.serve.catalog import MAX_EXAMPLE_CHARS, MAX_EXAMPLES, RUN_ID_RE
from huggingtweets.serve.requests import (
    SERVER_ONLY_OPTIONS,
    TRAIN_ALIASES,
    GenerateRequest,
    prompt_problem,
)

MAX_TEXT = 200  # a text option's length when its spec gives none
MAX_LIST = 10  # names in a list option, each at most 100 characters


class Strict(BaseModel):
    # Unknown fields refused; no quiet coercion ("5" is not a number, "yes" not true).
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class RunSummary(BaseModel):
    id: str
    handles: list[str]
    has_model: bool
    posts: int | None = Field(description="Posts kept for training (None: not prepared).")
    created: str


class StatisticsRow(BaseModel):
    label: str
    values: dict[str, int] = Field(description="One value per account handle.")
    total: int


class AccountInfo(BaseModel):
    handle: str
    display_name: str | None
    platform: str


class Progress(BaseModel):
    stage: str | None = None
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eta: float | None = Field(None, description="Seconds left, estimated from the pace.")
    epoch: float | None = None
    message: str | None = None


class Job(BaseModel):
    id: str
    run_id: str
    kind: Literal["prepare", "train"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    position: int | None = Field(description="In the queue (1 = next); None unless queued.")
    progress: Progress | None
    error: str | None = Field(description="Why a failed job failed, in one line.")
    warnings: list[str]
    options: dict[str, Any]
    created: str
    finished: str | None


class RunDetail(RunSummary):
    accounts: list[AccountInfo]
    statistics: list[StatisticsRow] = Field(description="The model card's data table.")
    examples: dict[str, list[str]] = Field(
        description=f"A few kept posts per account (at most {MAX_EXAMPLES}), each of at most "
        f"{MAX_EXAMPLE_CHARS:,} characters: a longer one is cut and ends with "
        "'… [shortened: N characters in all]'."
    )
    jobs: list[Job]


Source = Annotated[str, Field(min_length=1, max_length=300)]
Handle = Annotated[str, Field(pattern=r"^@?[A-Za-z0-9_.@-]{1,100}$")]


class CreateRun(Strict):
    sources: list[Source] = Field(
        min_length=1,
        max_length=3,
        description="1 to 3 accounts: x:NAME, bsky:NAME, mastodon:@user@host, sample:NAME "
        "(files and exports: POST /api/v1/runs/upload).",
    )
    handles: list[Handle] = Field(
        default_factory=list, max_length=3, description="The handles to use, in order."
    )
    run_id: str | None = Field(
        None,
        pattern=f"^{RUN_ID_RE.pattern}$",
        description="Collect into this run (default: a new one named after the accounts).",
    )
    overwrite: bool = Field(
        False,
        description="With run_id: replace the dataset of a run that has a trained model. "
        "What was trained on its old dataset (model and card, metrics, evaluation, "
        "checkpoints, trials) is removed once the job has written the new dataset (a job "
        "that fails leaves the run as it was): train it again. Without it, such a run_id "
        "is refused (409).",
    )


def spec_field(spec: OptionSpec, *, required: bool = False, **extra: Any) -> tuple[Any, Any]:
    """A pydantic field (type, Field) from an option spec; on text, max is its length."""
    constraints: dict[str, Any] = {"description": spec.help}
    kind: Any = spec.kind
    if spec.kind in (int, float) and spec.min is not None:
        constraints["gt" if spec.min_open else "ge"] = spec.min
    if spec.kind in (int, float) and spec.max is not None:
        constraints["lt" if spec.max_open else "le"] = spec.max
    if spec.kind is float:
        constraints["allow_inf_nan"] = False
    if spec.kind is FilePath:
        kind = str
    if spec.kind is list:
        kind = list[Annotated[str, Field(max_length=100)]]
        constraints["max_length"] = MAX_LIST
    if spec.kind is str and not spec.choices:
        constraints["max_length"] = int(spec.max) if spec.max is not None else MAX_TEXT
    if spec.choices:
        kind = Literal[tuple(spec.choices)]
    if spec.optional:
        kind = kind | None
    default = str(spec.default) if isinstance(spec.default, FilePath) else spec.default
    return kind, Field(... if required else default, **{**constraints, **extra})


def _required(cls: type) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def _train_body() -> type[BaseModel]:
    """TrainOptions' fields but the server's own, and the form's aliases ("epochs" for
    num_train_epochs). The checks that pydantic cannot express (max_steps is 1+ or -1)
    still run in TrainOptions and answer 422 naming the field."""
    from huggingtweets.train.recipe import TrainOptions

    specs = {spec.name: spec for spec in option_specs(TrainOptions)}
    fields = {
        name: spec_field(spec) for name, spec in specs.items() if name not in SERVER_ONLY_OPTIONS
    }
    for alias, name in TRAIN_ALIASES.items():
        short = dataclasses.replace(
            specs[name], optional=True, default=None, help=f"{name}, shorter."
        )
        fields[alias] = spec_field(short)
    return create_model("TrainBody", __base__=Strict, **fields)


TrainBody = _train_body()


class VisiblePrompt(Strict):
    """A body whose prompt follows generate's one prompt rule (generate/text.py)."""

    @field_validator("prompt", check_fields=False)
    @classmethod
    def _visible_prompt(cls, prompt: str) -> str:
        problem = prompt_problem(prompt)
        if problem is not None:
            raise ValueError(problem)
        return prompt


def _generate_body() -> type[BaseModel]:
    """GenerateRequest's fields; a prompt with something to see (the schema says so too)."""
    required = _required(GenerateRequest)
    extra = {"model": {"min_length": 1}, "prompt": {"min_length": 1, "pattern": r"\S"}}
    fields = {
        spec.name: spec_field(spec, required=spec.name in required, **extra.get(spec.name, {}))
        for spec in option_specs(GenerateRequest)
    }
    return create_model("GenerateBody", __base__=VisiblePrompt, **fields)


GenerateBody = _generate_body()


class CopyInfo(BaseModel):
    kind: str
    words: int
    why: str


class ShareLinks(BaseModel):
    x: str
    bluesky: str
    mastodon: str


class SampleOut(BaseModel):
    text: str
    flagged: bool
    copy_: CopyInfo | None = Field(alias="copy")
    attempts: int
    share: ShareLinks | None = Field(description="None for a post that copies a training post.")


class GenerationOut(BaseModel):
    model: str
    prompt: str
    seed: int
    settings: dict[str, Any]
    checked: bool = Field(description="False: the model has no memorization guard.")
    flagged: int | None
    samples: list[SampleOut]
