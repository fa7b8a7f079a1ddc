"""Bluesky accounts through the public AppView, with the atproto SDK; no login needed.

``bsky:HANDLE`` (``name.bsky.social``), ``bsky:DID`` or ``https://bsky.app/profile/...``.
The author feed (posts, replies and reposts) is read newest first, 100 a page, by cursor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingtweets.collect.live.base import LiveSource, Page, Profile
from huggingtweets.collect.live.http import (
    Fault,
    MalformedAnswer,
    ServiceAddresses,
    bounded_httpx_hook,
    count_or_none,
    expect_shape,
    find_cause,
    parsing,
    seconds_until_reset,
    server_text,
    service_url,
    url_option,
)
from huggingtweets.collect.registry import (
    SourceOptions,
    register_options,
    register_prefix,
    register_spelling,
)
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import Account, Post
from huggingtweets.core.times import utc_iso

PLATFORM = "bsky"
SERVICE_ENV = "HUGGINGTWEETS_BSKY_SERVICE"
PUBLIC_APPVIEW = "https://public.api.bsky.app"
REPOST = "app.bsky.feed.defs#reasonRepost"
MAX_HANDLE = 253  # a handle is a domain name
NO_UNAUTHENTICATED = "!no-unauthenticated"  # "do not show my posts to logged-out readers"
_HANDLE_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_DID_RE = re.compile(r"did:(?:plc|web):[A-Za-z0-9._:%-]{1,2000}")
_PROFILE_URL_RE = re.compile(r"https?://(?:www\.)?bsky\.app/profile/([^/?#\s]+)/?(?:[?#].*)?")


@dataclass
class BlueskyOptions(ServiceAddresses):
    """Which Bluesky AppView answers (``SourceOptions.get(BlueskyOptions)``)."""

    bsky_service: str | None = url_option(
        "Bluesky AppView [env HUGGINGTWEETS_BSKY_SERVICE; default https://public.api.bsky.app].",
    )


register_options(BlueskyOptions)


def _actor(text: str) -> str | None:
    """A handle or DID from any accepted spelling, or None."""
    text = text.strip()
    match = _PROFILE_URL_RE.fullmatch(text)
    if match:
        text = match[1]
    text = text.removeprefix("@")
    if _DID_RE.fullmatch(text) or (len(text) <= MAX_HANDLE and _HANDLE_RE.fullmatch(text)):
        return text
    return None


class BlueskySource(LiveSource):
    platform = PLATFORM
    service = "Bluesky"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.actor = self.parse_account(
            _actor, "expected bsky:HANDLE (such as name.bsky.social) or bsky:DID"
        )
        self.service_url = service_url(
            options.get(BlueskyOptions).bsky_service, SERVICE_ENV, PUBLIC_APPVIEW
        )
        from atproto import Client
        from atproto_client.request import Request

        # The SDK's Request passes its arguments to httpx.Client: one time-out for all, and
        # a hook that reads every answer with a bound on its size and time.
        request = Request(
            timeout=self.live.timeout,
            event_hooks={"response": [bounded_httpx_hook(self.deadline)]},
        )
        self.client = Client(base_url=self.service_url, request=request)
        self.handle = self.actor

    def _ask(self, method, **params):
        """One XRPC call; a body that is not JSON becomes a MalformedAnswer."""
        from atproto_client.exceptions import AtProtocolError

        try:
            return method(**params)
        except AtProtocolError:
            raise
        except ValueError as exc:  # pydantic's JSON parser, before any model is built
            raise MalformedAnswer(server_text(str(exc).splitlines()[0])) from exc

    def lookup(self) -> Profile:
        profile = self._ask(self.client.get_profile, actor=self.actor)
        with parsing("a profile"):
            return self._profile(profile)

    def _profile(self, profile) -> Profile:
        expect_shape(
            isinstance(profile.did, str) and _DID_RE.fullmatch(profile.did) is not None,
            "a profile with a DID (did:plc:... or did:web:...)",
        )
        labels = {label.val for label in profile.labels or ()}
        if NO_UNAUTHENTICATED in labels:
            raise HuggingtweetsError(
                f"@{profile.handle} asks Bluesky not to show its posts to logged-out readers; "
                "huggingtweets respects that and does not collect them"
            )
        self.handle = profile.handle
        account = Account(
            platform=PLATFORM,
            handle=profile.handle,
            display_name=profile.display_name or None,
            avatar_url=profile.avatar or None,
            description=profile.description or None,
        )
        return Profile(account, profile.did, count_or_none(profile.posts_count))

    def fetch_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        # The feed has no "since": an update stops where it meets posts collected before.
        response = self._ask(
            self.client.get_author_feed,
            actor=account_id,
            cursor=cursor,
            limit=100,
            filter="posts_with_replies",
        )
        with parsing("a feed"):
            posts = [self._post(item) for item in response.feed]
        return Page(posts, response.cursor or None)

    def _post(self, item) -> Post:
        handle = self.options.handle or self.handle
        view = item.post
        record = view.record
        rkey = view.uri.rsplit("/", 1)[-1]
        url = f"https://bsky.app/profile/{view.author.handle}/post/{rkey}"
        langs = getattr(record, "langs", None) or []
        text = getattr(record, "text", "") or ""
        reason = item.reason
        if reason is not None and getattr(reason, "py_type", None) == REPOST:
            # A repost is its own record in the reposter's repository (older AppViews do
            # not name it: then the reposted post's key stands in).
            repost_key = reason.uri.rsplit("/", 1)[-1] if reason.uri else f"repost-{rkey}"
            return Post(
                platform=PLATFORM,
                id=repost_key,
                author=handle,
                created_at=utc_iso(reason.indexed_at),
                text=text,
                is_repost=True,
                lang=langs[0] if langs else None,
                url=url,
            )
        return Post(
            platform=PLATFORM,
            id=rkey,
            author=handle,
            created_at=utc_iso(getattr(record, "created_at", None) or view.indexed_at),
            text=text,
            is_reply=getattr(record, "reply", None) is not None,
            is_quote=_quotes_a_post(getattr(record, "embed", None)),
            lang=langs[0] if langs else None,
            url=url,
        )

    def classify(self, exc: Exception) -> Fault | None:
        import httpx
        from atproto_client import exceptions as atx

        where = f"Bluesky ({self.service_url})"
        malformed = find_cause(exc, MalformedAnswer)
        if malformed is not None or isinstance(exc, atx.ModelError):
            detail = server_text(
                str(malformed or exc).splitlines()[0] if str(malformed or exc) else ""
            )
            return Fault("transient", f"{where} sent a malformed answer ({detail})")
        if isinstance(exc, atx.RateLimitExceededError):
            headers = exc.response.headers if exc.response else {}
            return Fault(
                "rate_limit", f"rate limited by {where} (429)", seconds_until_reset(headers)
            )
        if isinstance(exc, atx.InvokeTimeoutError):
            return Fault("transient", f"{where} did not answer within {self.live.timeout:g}s")
        if isinstance(exc, atx.NetworkError):
            status = exc.response.status_code if exc.response else None
            reason = f"answered {status}" if status else "cannot be reached"
            return Fault("transient", f"{where} {reason}")
        if isinstance(exc, atx.UnauthorizedError):
            return Fault(
                "permanent",
                f"{where} refused to answer without a login ({_words(exc)}); use the public "
                f"AppView {PUBLIC_APPVIEW} (--bsky-service)",
            )
        if isinstance(exc, atx.BadRequestError):
            return Fault("permanent", self._bad_request(exc))
        if isinstance(exc, atx.RequestException) and exc.response is not None:
            status = exc.response.status_code
            if status >= 500:
                return Fault("transient", f"{where} failed ({status})")
            if status == 404:
                return Fault(
                    "permanent",
                    f"{where} answered 404: is it a Bluesky AppView? (--bsky-service, "
                    f"default {PUBLIC_APPVIEW})",
                )
            return Fault("permanent", f"{where} answered {status}: {_words(exc)}")
        if isinstance(exc, httpx.TransportError):  # what the SDK passes on unwrapped,
            # such as a connection closed without an answer
            return Fault("transient", f"{where} cannot be reached ({type(exc).__name__})")
        return None

    def _bad_request(self, exc) -> str:
        content = exc.response.content if exc.response else None
        error = server_text(getattr(content, "error", "") or "", 80)
        message = server_text(getattr(content, "message", "") or "")
        if error == "AccountTakedown" or "suspended" in message.lower():
            return f"{self.actor} is suspended on Bluesky; its posts cannot be collected"
        if error == "AccountDeactivated":
            return f"{self.actor} has deactivated their Bluesky account"
        if "not found" in message.lower() or error in ("ProfileNotFound", "NotFound"):
            return f"no Bluesky account {self.actor}; check the handle (such as name.bsky.social)"
        return f"Bluesky refused the request for {self.actor}: {error} {message}".strip()


def _words(exc) -> str:
    """The AppView's own words from an XRPC error, as one bounded, redacted line."""
    content = exc.response.content if getattr(exc, "response", None) else None
    error = getattr(content, "error", None)
    message = getattr(content, "message", None)
    if error or message:
        return server_text(" ".join(str(w) for w in (error, message) if w))
    return "no detail"


def _quotes_a_post(embed) -> bool:
    """A record embed (alone, or with media) that points at a post is a quote."""
    if embed is None:
        return False
    inner = getattr(embed, "record", None)
    if getattr(embed, "py_type", "") == "app.bsky.embed.recordWithMedia":
        inner = getattr(inner, "record", None)
    elif getattr(embed, "py_type", "") != "app.bsky.embed.record":
        return False
    return "/app.bsky.feed.post/" in str(getattr(inner, "uri", ""))


def _spelling(spec: str) -> str | None:
    if _PROFILE_URL_RE.fullmatch(spec) or _DID_RE.fullmatch(spec):
        return f"bsky:{_actor(spec) or spec}"
    if spec.lower().endswith(".bsky.social") and _actor(spec):
        return f"bsky:{spec.removeprefix('@')}"
    return None


register_prefix(
    "bsky:",
    BlueskySource,
    "a Bluesky account: bsky:HANDLE (such as name.bsky.social), bsky:DID or "
    "https://bsky.app/profile/HANDLE",
)
register_spelling(_spelling)
