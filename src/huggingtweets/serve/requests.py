"""What a client may ask the server for, each limit written once.

:class:`GenerateRequest` declares the generate request's fields with :func:`option`, as
every stage declares its options: its checks run here, and the API's body
(``serve.api.bodies.GenerateBody``) is derived from the same specs, as the training body
is from :class:`~huggingtweets.train.recipe.TrainOptions`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError, check_options, option, option_specs
from huggingtweets.generate.generator import DEFAULT_PROMPT, GenerateOptions, check_prompt
from huggingtweets.generate.text import prompt_problem as prompt_problem  # the CLI's rule
from huggingtweets.serve.messages import one_line

# The API's limits (issue 9): smaller than the CLI's, since anyone may send them.
MAX_REQUEST_SAMPLES = 20
MAX_REQUEST_LENGTH = 512
MAX_REQUEST_PROMPT = 1000
DEFAULT_REQUEST_SAMPLES = 10
# Training options a remote client may not set: a base in pickle form runs code on the
# server, so it is for the server's own user (the CLI), never a web form.
SERVER_ONLY_OPTIONS = ("trust_pickle",)
# The form's shorter words for training options.
TRAIN_ALIASES = {"epochs": "num_train_epochs"}
# The API's words for where files go (the web page says it its own way: serve.ui).
UPLOAD_HINT = "upload files and exports (POST /api/v1/runs/upload)"


def option_like(cls: type, name: str, **changes: Any) -> Any:
    """A field declared as ``cls``'s option ``name`` is (range, choices, help), with
    ``changes``: a limit the CLI and the API share is written once."""
    spec = next(spec for spec in option_specs(cls) if spec.name == name)
    kept = ("help", "min", "max", "min_open", "max_open", "choices")
    return option(spec.default, **{**{key: getattr(spec, key) for key in kept}, **changes})


@dataclasses.dataclass
class GenerateRequest:
    """One ``POST /api/v1/generate``: checked as the CLI checks ``generate``'s options,
    within the API's tighter limits. A bad field raises :class:`OptionError` naming it."""

    model: str = option(help="A model the server serves (a run id or a model's name).")
    # On text, max bounds the length in characters (checked below; the body's max_length).
    prompt: str = option(DEFAULT_PROMPT, max=MAX_REQUEST_PROMPT, help="The start of the posts.")
    n: int = option(DEFAULT_REQUEST_SAMPLES, min=1, max=MAX_REQUEST_SAMPLES, help="How many posts.")
    max_length: int | None = option_like(GenerateOptions, "max_length", max=MAX_REQUEST_LENGTH)
    temperature: float | None = option_like(GenerateOptions, "temperature")
    top_p: float | None = option_like(GenerateOptions, "top_p")
    seed: int | None = option_like(GenerateOptions, "seed", help="Seed for reproducible posts.")
    no_copies: bool = option(False, help="Draw again posts flagged as training posts.")

    def __post_init__(self) -> None:
        check_options(self)
        if not self.model.strip():
            raise OptionError("model", "must name a model (got an empty name)")
        if len(self.prompt) > MAX_REQUEST_PROMPT:
            raise OptionError(
                "prompt",
                f"must be at most {MAX_REQUEST_PROMPT:,} characters (got {len(self.prompt):,})",
            )
        try:
            check_prompt(self.prompt)
        except HuggingtweetsError as exc:
            raise OptionError("prompt", str(exc).removeprefix("the prompt ")) from None
        self.options()  # every check GenerateOptions makes

    def options(self) -> GenerateOptions:
        return GenerateOptions(
            num_return_sequences=self.n,
            max_length=self.max_length,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            no_copies=self.no_copies,
        )

    @property
    def batch_key(self) -> tuple | None:
        """What a forward pass shares (None: served alone, a request with a seed, so that
        it gets the same samples every time, exactly)."""
        return None if self.seed is not None else (self.temperature, self.top_p)


def client_train_options(options: object) -> dict[str, Any]:
    """Training options as a client gives them, checked for what a client may set: known
    names (the form's aliases accepted), none of the server's own, no tracker. The values
    are checked later by TrainOptions itself."""
    from huggingtweets.train.recipe import TrainOptions

    if not isinstance(options, dict):
        raise OptionError("options", "must be a mapping of training option names to values")
    options = dict(options)
    for alias, name in TRAIN_ALIASES.items():
        if alias in options:
            if name in options:
                raise OptionError(alias, f"is {name}: give one of them")
            options[name] = options.pop(alias)
    known = {spec.name for spec in option_specs(TrainOptions)}
    for name in options:
        if name not in known:
            raise OptionError(
                str(name)[:100], f"is not a training option; known: {', '.join(sorted(known))}"
            )
    for name in SERVER_ONLY_OPTIONS:
        if options.get(name):
            raise OptionError(name, "cannot be set through the server (it can run code)")
    if options.get("report_to") not in (None, "none", [], ["none"]):
        # W&B, MLflow ... would log with the server's owner's credentials, to their
        # accounts: a tracker is for the server's own user (`train --report-to`).
        raise OptionError(
            "report_to", "cannot be set through the server (it reports with its owner's logins)"
        )
    return options


def check_sources(sources: object, handles: object) -> None:
    """Accounts only (x:, bsky:, mastodon:, sample: and the spellings the platforms
    register). A path would let any client of the server read the server's files
    (and learn which exist): files and exports come as uploads instead."""
    from huggingtweets.collect import registry as source_registry
    from huggingtweets.collect.collection import resolve_all

    if not isinstance(sources, list | tuple) or not all(isinstance(s, str) for s in sources):
        raise OptionError("sources", "must be a list of account names")
    if not isinstance(handles, list | tuple) or not all(isinstance(h, str) for h in handles):
        raise OptionError("handles", "must be a list of handles")
    for spec in sources:
        prefixed = any(spec.startswith(p) for p in source_registry._PREFIXES)
        spelled = any(normalize(spec) for normalize in source_registry._SPELLINGS)
        if not (prefixed or spelled):
            raise OptionError(
                "sources",
                f"{one_line(spec, 100)!r} is not an account: give x:NAME, bsky:NAME, "
                f"mastodon:@user@host or sample:NAME; {UPLOAD_HINT}",
            )
    # The accounts alone first: an error then is theirs (an X handle too long is a
    # source's, though its message says "handle"); only then with the handles given.
    for name, given in (("sources", []), ("handles", list(handles))):
        if name == "handles" and not given:
            break
        try:
            resolve_all(list(sources), given)
        except OptionError:
            raise
        except HuggingtweetsError as exc:
            raise OptionError(name, str(exc)) from None
