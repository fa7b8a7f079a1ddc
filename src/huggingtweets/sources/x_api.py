"""X (Twitter) accounts through the X API v2, with tweepy's ``Client``.

``x:HANDLE``, ``@HANDLE`` or ``https://x.com/HANDLE``; the bearer token comes from
``X_BEARER_TOKEN`` (or ``TWITTER_BEARER_TOKEN``). The API serves a user's 3,200 most
recent posts, newest first, 100 a page.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from ..errors import HuggingtweetsError
from ..records import Account, Post
from ..times import utc_iso
from . import SourceOptions, register_prefix, register_spelling
from .live import (
    Fault,
    LiveSource,
    MalformedAnswer,
    Page,
    Profile,
    expect_shape,
    seconds_until_reset,
    setting,
)

PLATFORM = "x"
TOKEN_ENVS = ("X_BEARER_TOKEN", "TWITTER_BEARER_TOKEN")
URL_ENV = "HUGGINGTWEETS_X_API_URL"
TWEEPY_HOST = "https://api.twitter.com"  # where tweepy's Client always sends
MOST_RECENT = 3200  # the API's limit on a user's timeline
_HANDLE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")
_PROFILE_URL_RE = re.compile(
    r"https?://(?:www\.|mobile\.)?(?:x|twitter)\.com/@?([A-Za-z0-9_]{1,15})/?(?:[?#].*)?",
    re.IGNORECASE,
)
TWEET_FIELDS = ["created_at", "lang", "referenced_tweets", "note_tweet"]
# x.com/<these> are pages of the site, not accounts (no account can take these names).
_SITE_PAGES = frozenset(
    "home explore notifications messages settings search compose i login logout signup "
    "tos privacy hashtag intent share jobs".split()
)
USER_FIELDS = [
    "name",
    "username",
    "profile_image_url",
    "description",
    "protected",
    "public_metrics",
]


def _bearer_token() -> str | None:
    for name in TOKEN_ENVS:
        # A token pasted or read from a file often ends with a line break: not part of it.
        token = os.environ.get(name, "").strip()
        if token:
            return token
    return None


class _RedactTokens(logging.Filter):
    """tweepy logs every request's headers at DEBUG level, bearer token included."""

    BEARER = re.compile(r"Bearer [^\s'\",}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer " in message:
            record.msg, record.args = self.BEARER.sub("Bearer [token]", message), None
        return True


def _transport(timeout: float, base_url: str):
    """tweepy's ``Client`` sends every request to https://api.twitter.com with no
    time-out. Mounted on its ``requests`` session, this transport adapter (requests'
    documented extension point) gives each request a time-out and, when another API base
    URL is configured (a proxy, a local test server), sends it there instead."""
    from requests.adapters import HTTPAdapter
    from requests.utils import get_environ_proxies

    class Transport(HTTPAdapter):
        def send(self, request, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            if base_url != TWEEPY_HOST and request.url.startswith(TWEEPY_HOST):
                request.url = base_url + request.url[len(TWEEPY_HOST) :]
                # Proxies (and NO_PROXY) as they apply to where the request now goes.
                kwargs["proxies"] = get_environ_proxies(request.url)
            return super().send(request, **kwargs)

    return Transport()


class XApiSource(LiveSource):
    platform = PLATFORM
    service = "the X API"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        name = spec.split(":", 1)[1].strip().removeprefix("@")
        if not _HANDLE_RE.fullmatch(name):
            raise HuggingtweetsError(
                f"{spec!r}: an X handle is 1 to 15 letters, digits or '_' (x:HANDLE)"
            )
        self.username = name
        token = _bearer_token()
        if not token:
            raise HuggingtweetsError(
                f"collecting {spec} needs an X API bearer token: set X_BEARER_TOKEN "
                "(or TWITTER_BEARER_TOKEN); get one at https://developer.x.com"
            )
        import requests
        import tweepy

        # The raw answer: we check it is the JSON the API documents (tweepy's own parsing
        # reads an unexpected "{}" as a last, empty page, which would end a collection).
        self.client = tweepy.Client(
            bearer_token=token, return_type=requests.Response, wait_on_rate_limit=False
        )
        base_url = setting(self.live.x_api_url, URL_ENV, TWEEPY_HOST)
        self.client.session.mount(TWEEPY_HOST, _transport(self.live.timeout, base_url))
        tweepy_log = logging.getLogger("tweepy.client")
        if not any(isinstance(f, _RedactTokens) for f in tweepy_log.filters):
            tweepy_log.addFilter(_RedactTokens())

    def lookup(self) -> Profile:
        body = _json(self.client.get_user(username=self.username, user_fields=USER_FIELDS))
        user = body.get("data")
        if user is None:
            errors = body.get("errors") or []
            expect_shape(isinstance(errors, list), "a list of errors")
            raise HuggingtweetsError(self._lookup_error(errors))
        expect_shape(isinstance(user, dict) and "id" in user and "username" in user, "a user")
        if user.get("protected"):
            raise HuggingtweetsError(
                f"@{user['username']} is a protected X account: only approved followers can "
                "read its posts, so they cannot be collected (its owner can use their data export)"
            )
        self.username = user["username"]  # as the account spells it, for post URLs
        avatar = user.get("profile_image_url")
        if avatar:  # the original's 400×400 picture instead of the 48×48 one
            avatar = avatar.replace("_normal", "_400x400")
        count = (user.get("public_metrics") or {}).get("tweet_count")
        account = Account(
            platform=PLATFORM,
            handle=user["username"],
            display_name=user.get("name") or None,
            avatar_url=avatar or None,
            description=user.get("description") or None,
        )
        return Profile(account, str(user["id"]), min(count, MOST_RECENT) if count else None)

    def _lookup_error(self, errors: list) -> str:
        errors = [e for e in errors if isinstance(e, dict)]
        detail = " ".join(str(e.get("detail") or e.get("title") or "") for e in errors).strip()
        if "suspended" in detail.lower():
            return f"@{self.username} is suspended on X; its posts cannot be collected"
        if any("not found" in str(e.get("title", "")).lower() for e in errors) or not errors:
            return f"no X account @{self.username}; check the spelling of the handle"
        return f"the X API did not return @{self.username}: {detail}"

    def fetch_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        body = _json(
            self.client.get_users_tweets(
                account_id,
                max_results=100,
                pagination_token=cursor,
                since_id=since,
                tweet_fields=TWEET_FIELDS,
            )
        )
        data, meta = body.get("data"), body.get("meta")
        if data is None and body.get("errors") and not meta:
            errors = [e for e in body["errors"] if isinstance(e, dict)]
            detail = "; ".join(str(e.get("detail") or e.get("title")) for e in errors)
            raise HuggingtweetsError(
                f"the X API did not return the posts of @{self.username}: {detail}"
            )
        # Every page has "meta" (result_count, next_token): without it, the end of the
        # timeline cannot be told from an answer that lost its way.
        expect_shape(isinstance(meta, dict), 'a page of posts with its "meta"')
        expect_shape(
            isinstance(data or [], list)
            and all(isinstance(t, dict) and "id" in t and "text" in t for t in data or ()),
            "a list of posts",
        )
        return Page([self._post(tweet) for tweet in data or ()], meta.get("next_token"))

    def _post(self, data: dict[str, Any]) -> Post:
        handle = self.options.handle or self.username
        kinds = {ref.get("type") for ref in data.get("referenced_tweets") or ()}
        note = data.get("note_tweet") or {}
        return Post(
            platform=PLATFORM,
            id=str(data["id"]),
            author=handle,
            created_at=utc_iso(data.get("created_at")),
            text=note.get("text") or data["text"],  # a long post's whole text is its note
            is_repost="retweeted" in kinds,
            is_reply="replied_to" in kinds,
            is_quote="quoted" in kinds,
            lang=data.get("lang") or None,
            url=f"https://x.com/{self.username}/status/{data['id']}",
        )

    def classify(self, exc: Exception) -> Fault | None:
        import requests
        import tweepy

        if isinstance(exc, tweepy.TooManyRequests):
            wait = seconds_until_reset(exc.response.headers)
            return Fault("rate_limit", "rate limited by the X API (429)", wait)
        if isinstance(exc, tweepy.Unauthorized):
            return Fault(
                "permanent",
                "the X API refused the bearer token (401 Unauthorized); set X_BEARER_TOKEN "
                "to a valid token from https://developer.x.com",
            )
        if isinstance(exc, tweepy.Forbidden):
            return Fault(
                "permanent",
                f"the X API forbade the request (403: {_detail(exc)}); your API access level "
                "may not include reading posts, see https://developer.x.com",
            )
        if isinstance(exc, tweepy.NotFound):
            return Fault(
                "permanent",
                f"the X API has no @{self.username} (404 Not Found); check the spelling of the "
                "handle, or --x-api-url if another API address is set",
            )
        if isinstance(exc, tweepy.TwitterServerError):
            return Fault("transient", f"the X API failed ({exc.response.status_code})")
        if isinstance(exc, tweepy.HTTPException):
            return Fault(
                "permanent",
                f"the X API answered {exc.response.status_code}: {_detail(exc)}",
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return Fault("transient", f"the X API did not answer within {self.live.timeout:g}s")
        if isinstance(exc, requests.exceptions.JSONDecodeError):
            return Fault("transient", "the X API sent a malformed answer (not JSON)")
        if isinstance(exc, MalformedAnswer):
            return Fault("transient", f"the X API sent a malformed answer ({exc})")
        if isinstance(exc, requests.exceptions.InvalidHeader):
            return Fault(
                "permanent",
                f"the bearer token in {' or '.join(TOKEN_ENVS)} holds characters a request "
                "cannot carry (a space or line break inside it?); set it to the token alone",
            )
        if isinstance(exc, requests.exceptions.RequestException):
            return Fault("transient", f"cannot reach the X API ({type(exc).__name__})")
        return None


def _json(response) -> dict:
    """The body of a successful answer (tweepy has raised on error statuses already)."""
    body = response.json()
    expect_shape(isinstance(body, dict), "a JSON object")
    return body


def _detail(exc) -> str:
    """The API's own words from a tweepy HTTPException."""
    messages = [str(m) for m in exc.api_messages if m] or [
        str(e.get("detail") or e.get("title")) for e in exc.api_errors if isinstance(e, dict)
    ]
    return "; ".join(messages) or getattr(exc.response, "reason", None) or "no detail"


def _spelling(spec: str) -> str | None:
    if spec.startswith("@") and _HANDLE_RE.fullmatch(spec[1:]):
        return f"x:{spec[1:]}"
    match = _PROFILE_URL_RE.fullmatch(spec)
    return f"x:{match[1]}" if match and match[1].lower() not in _SITE_PAGES else None


register_prefix(
    "x:",
    XApiSource,
    "an X account: x:HANDLE, @HANDLE or https://x.com/HANDLE (X API; set X_BEARER_TOKEN)",
)
register_spelling(_spelling)
