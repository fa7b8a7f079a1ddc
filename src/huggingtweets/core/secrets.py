"""Secrets: the tokens huggingtweets is given, kept out of everything it shows or writes.

Tokens come from the environment only (and, for the Hugging Face Hub, the file that
``huggingface-cli login`` stores). A server, a proxy or a library may still send one back
inside an error message ("invalid token: Bearer AAAA..."), so every message a stage puts
into an error or an event goes through :func:`redact`, and the CLI redacts whatever it
prints. A value shorter than :data:`MIN_LENGTH` is not looked for: a token that short
is no secret worth the mangled text ("abc" in every word).
"""

from __future__ import annotations

import configparser
import functools
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote

SECRET_ENVS = (
    "X_BEARER_TOKEN",
    "TWITTER_BEARER_TOKEN",
    "MASTODON_ACCESS_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
)
MIN_LENGTH = 8
MASK = "***"
# The userinfo of a URL (scheme://user:password@host): up to the last "@" before the path,
# so a password holding a raw "@" goes too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact ``value`` too from now on (a token read from elsewhere, a password)."""
    if value and len(value.strip()) >= MIN_LENGTH:
        with _lock:
            _registered.add(value)


def _variants(value: str) -> set[str]:
    """The forms a token can come back in: as set, trimmed (we send it trimmed), each
    piece of one that holds a space or line break (a header carries the first), and
    percent-encoded or -decoded (X's bearer tokens hold "%2B"-style escapes that a
    server may echo decoded)."""
    forms = {value, value.strip(), *value.split()}
    for form in list(forms):
        forms.add(unquote(form))
        forms.add(quote(form, safe=""))
    return {form for form in forms if len(form) >= MIN_LENGTH}


def _hub_token_files() -> list[Path]:
    """Where huggingface_hub keeps a login (as its constants define them; no import)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    token = Path(os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token")).expanduser()
    return [token, token.parent / "stored_tokens"]


@functools.lru_cache(maxsize=8)
def _read_hub_file(path: str, _stamp: tuple[int, int]) -> tuple[str, ...]:
    """The tokens in one of the Hub's files (re-read when its size or time changes)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    if Path(path).name != "stored_tokens":
        return (text.strip(),)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return ()
    return tuple(parser[s].get("hf_token", "").strip() for s in parser.sections())


def _hub_tokens() -> list[str]:
    tokens: list[str] = []
    for path in _hub_token_files():
        try:
            stat = path.stat()
        except OSError:
            continue
        tokens.extend(_read_hub_file(str(path), (stat.st_mtime_ns, stat.st_size)))
    return tokens


def secret_values() -> list[str]:
    """Every configured secret in every form it is looked for, longest first."""
    values = [os.environ.get(name, "") for name in SECRET_ENVS]
    values += _hub_tokens()
    with _lock:
        values += _registered
    forms: set[str] = set()
    for value in values:
        if value:
            forms |= _variants(value)
    return sorted(forms, key=lambda v: (-len(v), v))


@functools.lru_cache(maxsize=16)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(v) for v in values))


def shown_url(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with every URL's userinfo removed:
    ``http://user:pw@host/x`` is shown ``http://host/x``. Every URL shown goes through it
    (:func:`redact` too), as an ``HF_ENDPOINT`` or a proxy may carry a password."""
    return _USERINFO.sub(r"\g<scheme>", text) if text and "@" in text else text


def redact(text: str) -> str:
    """``text`` with the value of every configured secret replaced by ``***``, and no
    URL's userinfo (:func:`shown_url`)."""
    if not text:
        return text
    return redactor()(text)


def redactor() -> Callable[[str], str]:
    """:func:`redact` for the secrets configured now, for many texts in a row (the
    environment and the Hub's files are read once)."""
    values = secret_values()
    if not values:
        return shown_url
    pattern = _pattern(tuple(values))
    return lambda text: pattern.sub(MASK, shown_url(text)) if text else text


def contains_secret(text: str) -> bool:
    return bool(text) and redact(text) != text
