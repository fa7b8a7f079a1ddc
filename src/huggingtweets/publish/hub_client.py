"""Talking to the Hugging Face Hub: its address (never shown with a password), the token
(from the environment or ``hf auth login``, never shown), one short ``whoami`` before any
work, the library's log lines kept off the terminal, and an undo list for what a push
created before it failed."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter
from huggingtweets.core.runs import (
    atomic_write,
)
from huggingtweets.core.secrets import redact, register_secret, shown_url

PROBE_TIMEOUT_S = 10.0
NOTHING_CHANGED = "No files have been modified since last commit"  # the Hub's words


def endpoint() -> str:
    """The Hub's URL as requests are sent to it (any userinfo kept: see shown_endpoint)."""
    from huggingface_hub import constants

    url = constants.ENDPOINT.rstrip("/")
    register_secret(urlsplit(url).password)  # blanked, should it be quoted alone
    return url


def shown_endpoint() -> str:
    """The Hub's URL as messages show it: without a user or password (HF_ENDPOINT may
    carry them)."""
    return shown_url(endpoint())


def hub_token() -> str:
    """The Hugging Face token (HF_TOKEN or a login), registered as a secret; a missing
    or unreadable one, or HF_HUB_OFFLINE, said in one line."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_token

    if constants.HF_HUB_OFFLINE:
        raise HuggingtweetsError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    try:
        token = get_token()
    except Exception as exc:  # an OIDC exchange that failed, a damaged token file
        raise HuggingtweetsError(redact(f"cannot read the Hugging Face token: {exc}")) from None
    if not token:
        raise HuggingtweetsError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write "
            "access, from https://huggingface.co/settings/tokens)"
        )
    register_secret(token)  # whatever its source, it is blanked out of every message
    return token


def unreachable(reason: object) -> HuggingtweetsError:
    return HuggingtweetsError(
        redact(
            f"cannot reach the Hugging Face Hub ({shown_endpoint()}: {reason}); check the "
            "connection (or HF_ENDPOINT) and push again"
        )
    )


def whoami(token: str) -> dict:
    """Who the token belongs to, in one short request without retries: the Hub answers
    and accepts the token, or we say in one line why not.

    The request goes through huggingface_hub's own session (its proxies, certificates,
    user agent and any client factory set with ``set_client_factory``), as
    ``HfApi.whoami`` sends it, but with a time-out: that session waits forever."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    try:
        response = get_session().get(
            f"{endpoint()}/api/whoami-v2",
            headers=build_hf_headers(token=token),
            timeout=PROBE_TIMEOUT_S,
        )
        hf_raise_for_status(response)
        data = response.json()
    except HfHubHTTPError as exc:
        if exc.response.status_code == 401:
            raise HuggingtweetsError(
                "the Hugging Face Hub refused the token (401 Unauthorized): it is invalid or "
                "expired; set HF_TOKEN to a valid one or run `hf auth login`"
            ) from None
        answer = exc.response
        raise unreachable(f"HTTP {answer.status_code} {answer.reason_phrase}") from None
    except ValueError:  # an answer that is not JSON
        raise unreachable("its answer to whoami is not JSON") from None
    except Exception as exc:
        if not is_transport_error(exc):
            raise
        raise unreachable(first_line_of(exc) or type(exc).__name__) from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise unreachable("its answer to whoami names no user")
    return data


def token_role(user: dict) -> str | None:
    auth = user.get("auth")
    token = auth.get("accessToken") if isinstance(auth, dict) else None
    role = token.get("role") if isinstance(token, dict) else None
    return role if isinstance(role, str) else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, once each."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def local_file_error(exc: BaseException) -> OSError | None:
    """The first OSError in ``exc``'s chain when it names a path (a folder that cannot be
    written, a file that cannot be read): this machine's, not the network's."""
    for current in _chain(exc):
        if isinstance(current, OSError):
            return current if current.filename is not None else None
    return None


def is_transport_error(exc: BaseException) -> bool:
    """A lost connection or a time-out, whichever HTTP library huggingface_hub uses (not
    an error of a local file, which an OSError naming a path is)."""
    for current in _chain(exc):
        root = type(current).__module__.split(".")[0]
        if root in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            return True
        if isinstance(current, OSError):
            return current.filename is None
    return False


def first_line_of(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


@contextlib.contextmanager
def quiet_hub(reporter: Reporter) -> Iterator[list[str]]:
    """huggingface_hub's progress bars off, and its log messages (warnings, a commit that
    changes nothing) turned into events: the library prints nothing of its own. Yields
    the messages, as they come."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    said: list[str] = []

    def to_event(record: logging.LogRecord) -> bool:
        message = redact(first_line_of(record.getMessage()))
        said.append(message)
        if NOTHING_CHANGED in message:
            reporter.info("push", "nothing changed since the last push: no new commit")
        elif record.levelno >= logging.WARNING:
            reporter.warning("push", message)
        return False

    handlers = logging.getLogger("huggingface_hub").handlers
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    for handler in handlers:
        handler.addFilter(to_event)
    try:
        yield said
    finally:
        for handler in handlers:
            handler.removeFilter(to_event)
        if not was_disabled:
            enable_progress_bars()


def repo_info(api, repo_id: str, token: str, repo_type: str | None = None):
    """The repository's info, or None when it does not exist (or this token cannot see it)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.repo_info(repo_id, repo_type=repo_type, token=token)
    except RepositoryNotFoundError:
        return None


class Undo:
    """What a push did before it failed, undone in reverse order: a repository or branch
    it created deleted, the card files it rewrote put back as they were. Each step is
    tried once; one that fails (the Hub unreachable) is said, not raised over the error."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, step: Callable[[], object]) -> None:
        self.steps.append((what, step))

    def restore_files(self, folder: Path, patterns: tuple[str, ...]) -> None:
        """The files of ``folder`` that match ``patterns`` put back as they are now (and
        new ones removed) on undo."""
        before = {p.name: p.read_bytes() for p in _matching(folder, patterns)}

        def restore() -> None:
            for path in _matching(folder, patterns):
                if path.name not in before:
                    path.unlink()
            for name, content in before.items():  # only what changed: nothing else written
                path = folder / name
                if not path.is_file() or path.read_bytes() != content:
                    atomic_write(path, content)

        self.add(f"the card in {folder}", restore)

    def run(self) -> None:
        for what, step in reversed(self.steps):
            try:
                step()
            except Exception as exc:
                self.reporter.warning(
                    "push",
                    redact(f"could not undo {what}: {first_line_of(exc)}; remove it by hand"),
                )
        self.steps.clear()


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and any(fnmatch.fnmatchcase(p.name, pattern) for pattern in patterns)
    ]
