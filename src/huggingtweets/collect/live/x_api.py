"""X (Twitter) accounts through the X API v2, with tweepy's ``Client``.

``x:HANDLE``, ``@HANDLE`` or ``https://x.com/HANDLE``; the bearer token comes from
``X_BEARER_TOKEN`` (or ``TWITTER_BEARER_TOKEN``). The API serves a user's 3,200 most
recent posts, newest first, 100 a page.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

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
from huggingtweets.core.records import Account, Post
from huggingtweets.core.secrets import redact
from huggingtweets.core.times import utc_iso

PLATFORM = "x"
TOKEN_ENVS = ("X_BEARER_TOKEN", "TWITTER_BEARER_TOKEN")
URL_ENV = "HUGGINGTWEETS_X_API_URL"
TWEEPY_HOST = "https://api.twitter.com"  # where tweepy's Client always sends
MOST_RECENT = 3200  # the API's limit on a user's timeline
_HANDLE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")
_ID_RE = re.compile(r"[0-9]{1,30}")
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


@dataclass
class XApiOptions(ServiceAddresses):
    """Where the X API is (``SourceOptions.get(XApiOptions)``)."""

    x_api_url: str | None = url_option(
        "X API base URL [env HUGGINGTWEETS_X_API_URL; default https://api.twitter.com].",
    )


register_options(XApiOptions)


def _handle(text: str) -> str | None:
    name = text.strip().removeprefix("@")
    return name if _HANDLE_RE.fullmatch(name) else None


def _bearer_token() -> str | None:
    for name in TOKEN_ENVS:
        # A token pasted or read from a file often ends with a line break: not part of it.
        token = os.environ.get(name, "").strip()
        if token:
            return token
    return None


class _RedactTokens(logging.Filter):
    """tweepy logs every request's headers (bearer token included) and every answer's
    body (which a server may make echo it) at DEBUG level."""

    BEARER = re.compile(r"Bearer [^\s'\",}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(self.BEARER.sub("Bearer [token]", message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class XApiSource(LiveSource):
    platform = PLATFORM
    service = "the X API"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.username = self.handle = self.parse_account(
            _handle, "an X handle is 1 to 15 letters, digits or '_' (x:HANDLE)"
        )
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
        # tweepy's Client sends every request to https://api.twitter.com with no time-out:
        # this adapter gives each one a time-out and a bound on its answer, and sends it to
        # another API base URL when one is configured (a proxy, a local test server).
        base_url = service_url(options.get(XApiOptions).x_api_url, URL_ENV, TWEEPY_HOST)
        self.client.session.mount(
            TWEEPY_HOST,
            bounded_adapter(self.live.timeout, self.deadline, (TWEEPY_HOST, base_url)),
        )
        # The last answer, per thread: tweepy fails while reading some error answers (_ask).
        self.last_answer = LastAnswer()
        self.client.session.hooks["response"].append(self.last_answer.remember)
        tweepy_log = logging.getLogger("tweepy.client")
        if not any(isinstance(f, _RedactTokens) for f in tweepy_log.filters):
            tweepy_log.addFilter(_RedactTokens())

    def _ask(self, method, *args, **kwargs) -> dict:
        """One request's JSON object. tweepy itself fails on some error answers: a body
        that is JSON but not an object, an ``x-rate-limit-reset`` that is not a whole
        number. Then its own error for that status is raised, as if the body had said
        nothing, so that a 429 still waits and a 5xx is still retried."""
        import tweepy

        self.last_answer.forget()
        try:
            return _json(method(*args, **kwargs))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            answer = self.last_answer.response
            if answer is None or answer.status_code < 400 or isinstance(exc, MalformedAnswer):
                raise
            status = answer.status_code
            kind = {
                400: tweepy.BadRequest,
                401: tweepy.Unauthorized,
                403: tweepy.Forbidden,
                404: tweepy.NotFound,
                429: tweepy.TooManyRequests,
            }.get(status, tweepy.TwitterServerError if status >= 500 else tweepy.HTTPException)
            raise kind(answer, response_json={}) from exc

    def lookup(self) -> Profile:
        body = self._ask(self.client.get_user, username=self.username, user_fields=USER_FIELDS)
        with parsing("a user"):
            return self._profile(body)

    def _profile(self, body: dict) -> Profile:
        user = body.get("data")
        if user is None:
            errors = body.get("errors") or []
            expect_shape(isinstance(errors, list), "a list of errors")
            raise HuggingtweetsError(self._lookup_error(errors))
        expect_shape(
            isinstance(user, dict)
            and _ID_RE.fullmatch(str(user.get("id")))
            and isinstance(user.get("username"), str)
            and _HANDLE_RE.fullmatch(user["username"]),
            "a user with a numeric id and a handle",
        )
        if user.get("protected"):
            raise HuggingtweetsError(
                f"@{user['username']} is a protected X account: only approved followers can "
                "read its posts, so they cannot be collected (its owner can use their data export)"
            )
        self.username = user["username"]  # as the account spells it, for post URLs
        avatar = user.get("profile_image_url")
        if avatar:  # the original's 400×400 picture instead of the 48×48 one
            avatar = avatar.replace("_normal", "_400x400")
        metrics = user.get("public_metrics")
        count = count_or_none(metrics.get("tweet_count") if isinstance(metrics, dict) else None)
        account = Account(
            platform=PLATFORM,
            handle=user["username"],
            display_name=optional_text(user.get("name")),
            avatar_url=optional_text(avatar),
            description=optional_text(user.get("description")),
        )
        return Profile(account, str(user["id"]), min(count, MOST_RECENT) if count else None)

    def _lookup_error(self, errors: list) -> str:
        errors = [e for e in errors if isinstance(e, dict)]
        detail = server_text(" ".join(str(e.get("detail") or e.get("title") or "") for e in errors))
        if "suspended" in detail.lower():
            return f"@{self.username} is suspended on X; its posts cannot be collected"
        if any("not found" in str(e.get("title", "")).lower() for e in errors) or not errors:
            return f"no X account @{self.username}; check the spelling of the handle"
        return f"the X API did not return @{self.username}: {detail}"

    def fetch_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        body = self._ask(
            self.client.get_users_tweets,
            account_id,
            max_results=100,
            pagination_token=cursor,
            since_id=since,
            tweet_fields=TWEET_FIELDS,
        )
        data, meta = body.get("data"), body.get("meta")
        if data is None and body.get("errors") and not meta:
            errors = body["errors"] if isinstance(body["errors"], list) else []
            detail = server_text(
                "; ".join(
                    str(e.get("detail") or e.get("title")) for e in errors if isinstance(e, dict)
                )
            )
            raise HuggingtweetsError(
                f"the X API did not return the posts of @{self.username}: {detail}"
            )
        # Every page has "meta" (result_count, next_token): without it, the end of the
        # timeline cannot be told from an answer that lost its way.
        expect_shape(isinstance(meta, dict), 'a page of posts with its "meta"')
        expect_shape(
            isinstance(data or [], list)
            and all(
                isinstance(t, dict)
                and _ID_RE.fullmatch(str(t.get("id")))
                and isinstance(t.get("text"), str)
                for t in data or ()
            ),
            "a list of posts, each with a numeric id and a text",
        )
        next_token = meta.get("next_token")
        expect_shape(next_token is None or isinstance(next_token, str), "a next_token text")
        with parsing("a post"):
            return Page([self._post(tweet) for tweet in data or ()], next_token or None)

    def _post(self, data: dict[str, Any]) -> Post:
        handle = self.options.handle or self.username
        references = data.get("referenced_tweets") or ()
        kinds = {ref.get("type") for ref in references if isinstance(ref, dict)}
        note = data.get("note_tweet")
        note_text = note.get("text") if isinstance(note, dict) else None
        return Post(
            platform=PLATFORM,
            id=str(data["id"]),
            author=handle,
            created_at=utc_iso(data.get("created_at")),
            # a long post's whole text is its note
            text=note_text if isinstance(note_text, str) and note_text else data["text"],
            is_repost="retweeted" in kinds,
            is_reply="replied_to" in kinds,
            is_quote="quoted" in kinds,
            lang=optional_text(data.get("lang")),
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
        malformed = find_cause(exc, MalformedAnswer)
        if malformed is not None:
            return Fault("transient", f"the X API sent a malformed answer ({malformed})")
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
    """The API's own words from a tweepy HTTPException, as one bounded, redacted line."""
    messages = [str(m) for m in exc.api_messages if m] or [
        str(e.get("detail") or e.get("title")) for e in exc.api_errors if isinstance(e, dict)
    ]
    text = "; ".join(messages) or getattr(exc.response, "reason", None) or "no detail"
    return server_text(text)


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
