"""How live accounts are fetched: the options every live platform shares.

Apart from the collection (``base.py``) so that the sources registry can name them in
``SourceOptions.live`` without importing the live sources, which import the registry.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import check_options, option

BACKOFF_ENV = "HUGGINGTWEETS_BACKOFF_BASE"


def _default_backoff_base() -> float:
    value = os.environ.get(BACKOFF_ENV)
    if not value:
        return 1.0
    try:
        base = float(value)
    except ValueError:
        raise HuggingtweetsError(f"{BACKOFF_ENV}={value!r}: expected a number of seconds") from None
    if not (math.isfinite(base) and base >= 0):
        raise HuggingtweetsError(f"{BACKOFF_ENV}={value!r}: expected 0 seconds or more")
    return base


@dataclass
class LiveOptions:
    """How live accounts are fetched (``collect`` / ``prepare`` / ``train`` options). Each
    platform declares its own options (its service's address) in its module."""

    update: bool = option(
        False, help="Live accounts: fetch only posts newer than the newest one collected."
    )
    wait: bool = option(
        True,
        flag="--no-wait",
        help="Live accounts: on a rate limit, stop (run again later to continue) instead of "
        "waiting for the reset.",
    )
    timeout: float = option(
        30.0,
        min=0,
        min_open=True,
        metavar="SECONDS",
        help="Live accounts: time-out of every request.",
    )
    retries: int = option(
        5,
        min=0,
        max=100,
        help="Live accounts: retries of a request after a 5xx, time-out or dropped connection "
        "(exponential back-off).",
    )
    backoff_base: float = option(
        default_factory=_default_backoff_base,
        min=0,
        cli=False,
        help="The first retry's delay in seconds (env HUGGINGTWEETS_BACKOFF_BASE).",
    )
    backoff_max: float = option(60.0, min=0, cli=False, help="The longest delay between retries.")

    def __post_init__(self) -> None:
        check_options(self)
