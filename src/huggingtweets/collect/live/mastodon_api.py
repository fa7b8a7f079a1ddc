"""Mastodon accounts through the instance's REST API, with Mastodon.py.

``mastodon:@user@instance`` (also ``@user@instance`` and ``https://instance/@user``).
Public posts need no login; an instance that requires one takes the token in
``MASTODON_ACCESS_TOKEN``, which is sent only to the instance named in
``MASTODON_INSTANCE``: a token belongs to one instance, and collecting an account
elsewhere must not hand it to that other server. Statuses are read newest first, 40 a
page, following the ``Link`` headers; HTML becomes text as for exports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from huggingtweets.collect.htmltext import html_to_text
from huggingtweets.collect.live.base import LiveSource, Page, Profile
from huggingtweets.collect.live.http import (
    Fault,
    LastAnswer,
    MalformedAnswer,
    ServiceAddresses,
    bounded_adapter,
    count_or_none,
    expect_shape,
    find_cause,
    optional_text,
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
from huggingtweets.core.records import Account, Post, visibility_from_name
from huggingtweets.core.times import utc_iso

PLATFORM = "mastodon"
TOKEN_ENV = "MASTODON_ACCESS_TOKEN"
TOKEN_INSTANCE_ENV = "MASTODON_INSTANCE"
URL_ENV = "HUGGINGTWEETS_MASTODON_URL"
PAGE_SIZE = 40  # Mastodon's largest page of statuses
_USER = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}"
_ACCT_RE = re.compile(rf"@?({_USER})@({_HOST})")
_PROFILE_URL_RE = re.compile(rf"https?://({_HOST})/@({_USER})(?:@({_HOST}))?/?(?:[?#].*)?")
_NOT_MASTODON = ("x.com", "twitter.com", "bsky.app")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # snowflakes; Pleroma's flake ids


@dataclass
class MastodonOptions(ServiceAddresses):
    """Where a Mastodon instance's API is (``SourceOptions.get(MastodonOptions)``)."""

    mastodon_url: str | None = url_option(
        "Mastodon API base URL when it is not https://INSTANCE [env HUGGINGTWEETS_MASTODON_URL].",
    )


register_options(MastodonOptions)


def _parse_acct(text: str) -> tuple[str, str] | None:
    """(user, instance) from ``@user@instance``, ``user@instance`` or a profile URL."""
    text = text.strip()
    match = _ACCT_RE.fullmatch(text)
    if match:
        return match[1], match[2].lower()
    match = _PROFILE_URL_RE.fullmatch(text)
    if match and match[1].lower().removeprefix("www.") not in _NOT_MASTODON:
        # https://a.example/@bob@b.example is a.example's view of bob on b.example.
        return match[2], (match[3] or match[1]).lower()
    return None


class MastodonSource(LiveSource):
    platform = PLATFORM
    service = "Mastodon"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.user, self.instance = self.parse_account(
            _parse_acct, "expected mastodon:@USER@INSTANCE (such as @Gargron@mastodon.social)"
        )
        self.handle = f"{self.user}@{self.instance}"
        self.service = self.instance
        self.base_url = service_url(
            options.get(MastodonOptions).mastodon_url, URL_ENV, f"https://{self.instance}"
        )
        token = os.environ.get(TOKEN_ENV) or None
        token_instance = (os.environ.get(TOKEN_INSTANCE_ENV) or "").strip().lower()
        self.token_unclaimed = token is not None and not token_instance
        if token_instance not in (self.instance, urlparse(self.base_url).netloc.lower()):
            token = None  # not this instance's token: never send it here
        self.uses_token = token is not None
        # The last HTTP answer, as requests received it, per thread (each request runs in
        # a thread of its own; one abandoned at a time-out must not answer for the next).
        self.last_answer = LastAnswer()

        import requests
        from mastodon import Mastodon

        session = requests.Session()
        # Mastodon.py raises on a 429 without the response, drops the error text of
        # endpoints that return lists, and casts any JSON to the type it expects ("{}" to
        # an empty list): keep the last answer (requests' documented response hook) to
        # read the reset time, the instance's words and the body's real shape from.
        session.hooks["response"].append(self.last_answer.remember)
        adapter = bounded_adapter(self.live.timeout, self.deadline)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.api = Mastodon(
            api_base_url=self.base_url,
            access_token=token,
            request_timeout=self.live.timeout,
            ratelimit_method="throw",  # waiting, with a countdown, is ours to do
            version_check_mode="none",  # no /api/v1/instance round trip
            session=session,
        )

    def _token_advice(self) -> str:
        """What to do when the instance asks for a login and no token was sent."""
        if self.token_unclaimed:
            return (
                f"{TOKEN_ENV} is set but is sent only to the instance it belongs to: set "
                f"{TOKEN_INSTANCE_ENV}={self.instance} if it is this one's"
            )
        return (
            f"set {TOKEN_ENV} to a token of that instance (and "
            f"{TOKEN_INSTANCE_ENV}={self.instance})"
        )

    def _error(self, exc) -> str:
        """The instance's own words (``{"error": "..."}``) as one bounded, redacted line."""
        if len(exc.args) > 3 and exc.args[3]:
            return server_text(exc.args[3])
        try:
            return server_text(self.last_answer.response.json()["error"])
        except (AttributeError, ValueError, KeyError, TypeError):
            return "no detail"

    @property
    def acct(self) -> str:
        return f"@{self.user}@{self.instance}"

    def lookup(self) -> Profile:
        account = self.api.account_lookup(acct=self.user)
        with parsing("an account"):
            return self._profile(account)

    def _profile(self, account) -> Profile:
        expect_shape(
            isinstance(account, dict) and _ID_RE.fullmatch(str(account.get("id"))) is not None,
            "an account with an id",
        )
        if account.get("suspended"):
            raise HuggingtweetsError(f"{self.acct} is suspended; its posts cannot be collected")
        acct = str(account.get("acct") or account["username"])
        handle = acct if "@" in acct else f"{acct}@{self.instance}"
        self.handle = handle
        note = account.get("note")
        profile = Account(
            platform=PLATFORM,
            handle=handle,
            display_name=optional_text(account.get("display_name")),
            avatar_url=optional_text(account.get("avatar")),
            description=html_to_text(note) if isinstance(note, str) and note else None,
        )
        return Profile(profile, str(account["id"]), count_or_none(account.get("statuses_count")))

    def fetch_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        page = self.api.account_statuses(account_id, limit=PAGE_SIZE, max_id=cursor, since_id=since)
        # A list, even an empty one, at the end: "{}" or a string is not "no more posts".
        answer = self.last_answer.response
        raw = answer.content.lstrip()[:1] if answer is not None else b"["
        expect_shape(
            raw == b"[" and all(isinstance(s, dict) and "id" in s for s in page),
            "a list of statuses",
        )
        following = self.api.get_pagination_info(page, "next")  # from the Link header
        next_max_id = following.get("max_id") if following else None
        with parsing("a status"):
            posts = [self._post(status) for status in page]
        return Page(posts, str(next_max_id) if next_max_id not in (None, "") else None)

    def _post(self, status) -> Post:
        handle = self.options.handle or self.handle
        visibility = visibility_from_name(status.get("visibility"))  # unknown: private
        reblog = status.get("reblog")
        if reblog:
            return Post(
                platform=PLATFORM,
                id=str(status["id"]),
                author=handle,
                created_at=utc_iso(status.get("created_at")),
                text="",  # as for exports: a boost's text is someone else's
                is_repost=True,
                visibility=visibility,
                url=optional_text(reblog.get("url") or reblog.get("uri"))
                if isinstance(reblog, dict)
                else None,
            )
        return Post(
            platform=PLATFORM,
            id=str(status["id"]),
            author=handle,
            created_at=utc_iso(status.get("created_at")),
            text=html_to_text(optional_text(status.get("content")) or ""),
            is_reply=status.get("in_reply_to_id") is not None,
            is_quote=bool(status.get("quote")),
            visibility=visibility,
            lang=optional_text(status.get("language")),
            url=optional_text(status.get("url") or status.get("uri")),
        )

    def classify(self, exc: Exception) -> Fault | None:
        import mastodon as mp

        where = f"{self.instance} ({self.base_url})"
        malformed = find_cause(exc, MalformedAnswer)
        if malformed is not None:
            return Fault("transient", f"{where} sent a malformed answer ({malformed})")
        if isinstance(exc, mp.MastodonRatelimitError):
            answer = self.last_answer.response
            wait = seconds_until_reset(answer.headers if answer is not None else {})
            return Fault("rate_limit", f"rate limited by {where} (429)", wait)
        if isinstance(exc, mp.MastodonNetworkError):
            text = str(exc).lower()
            if "timed out" in text or "timeout" in text:
                return Fault("transient", f"{where} did not answer within {self.live.timeout:g}s")
            return Fault("transient", f"cannot reach {where}")
        if isinstance(exc, mp.MastodonNotFoundError):
            return Fault("permanent", f"no account {self.acct} on {where}; check the spelling")
        if isinstance(exc, mp.MastodonUnauthorizedError):
            if self.uses_token:
                return Fault("permanent", f"{where} refused {TOKEN_ENV} (401); set a valid token")
            return Fault(
                "permanent", f"{where} requires an access token (401): {self._token_advice()}"
            )
        if isinstance(exc, mp.MastodonServerError):
            return Fault("transient", f"{where} failed ({_status(exc)})")
        if isinstance(exc, mp.MastodonAPIError):
            status = _status(exc)
            if status is None:  # Mastodon.py could not parse the body
                return Fault("transient", f"{where} sent a malformed answer (not JSON)")
            if status == 410:
                return Fault("permanent", f"{self.acct} is gone (suspended or deleted)")
            if status == 403:
                return Fault(
                    "permanent",
                    f"{where} forbade the request (403: {self._error(exc)}); "
                    + (
                        f"{TOKEN_ENV} was sent: it may lack the read scope"
                        if self.uses_token
                        else f"it may require a login ({self._token_advice()})"
                    ),
                )
            return Fault("permanent", f"{where} answered {status}: {self._error(exc)}")
        return None


def _status(exc) -> int | None:
    """Mastodon.py raises API errors with (message, status, reason, error) as args."""
    return exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None


def _spelling(spec: str) -> str | None:
    parsed = _parse_acct(spec)
    return f"mastodon:@{parsed[0]}@{parsed[1]}" if parsed else None


register_prefix(
    "mastodon:",
    MastodonSource,
    "a Mastodon account: mastodon:@USER@INSTANCE, @USER@INSTANCE or https://INSTANCE/@USER",
)
register_spelling(_spelling)
