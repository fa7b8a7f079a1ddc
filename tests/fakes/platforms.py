"""The three fake services behind one face, for tests that run on every platform: an
account of 55 posts (six pages of ten), its page requests and cursors, and ways to
rewrite a page as a hostile server would (another cursor onward, more items)."""

from __future__ import annotations

import json
import re

import pytest

from huggingtweets.collect.live.bluesky import BlueskyOptions
from huggingtweets.collect.live.mastodon_api import MastodonOptions
from huggingtweets.collect.live.x_api import XApiOptions

from . import Answer, Seen, collect_live
from .bluesky import FakeBluesky
from .mastodon import FakeMastodon
from .x_api import FakeX

TOKEN = "x-test-token-resume"
NAMES = ("x", "bsky", "mastodon")


class Platform:
    """One fake service with an account of 55 posts (six pages of ten)."""

    def __init__(self, name: str):
        self.name = name
        if name == "x":
            self.server, self.spec, self.handle = FakeX(TOKEN), "x:romeo", "romeo"
            self.server.add_user("romeo", 55)
            self.pages, self.cursor = "/tweets", "pagination_token"
            self.options = ["--x-api-url", self.server.url]
            self.extra = XApiOptions(x_api_url=self.server.url)
        elif name == "bsky":
            self.server, self.spec, self.handle = FakeBluesky(), "bsky:juliet.test", "juliet.test"
            self.server.add_account("juliet.test", 55)
            self.pages, self.cursor = "getAuthorFeed", "cursor"
            self.options = ["--bsky-service", self.server.url]
            self.extra = BlueskyOptions(bsky_service=self.server.url)
        else:
            self.server = FakeMastodon("social.example")
            self.spec, self.handle = "@mercutio@social.example", "mercutio@social.example"
            self.server.add_account("mercutio", 55)
            self.pages, self.cursor = "/statuses", "max_id"
            self.options = ["--mastodon-url", self.server.url]
            self.extra = MastodonOptions(mastodon_url=self.server.url)

    def add(self, count: int) -> None:
        if self.name == "x":
            self.server.add_posts("romeo", count)
        elif self.name == "bsky":
            self.server.add_posts("juliet.test", count)
        else:
            self.server.add_statuses("mercutio", count)

    def ids(self) -> list[str]:
        if self.name == "x":
            return self.server.all_ids("romeo")
        if self.name == "bsky":
            feed = self.server.feeds[self.server.did("juliet.test")]
            return [(i.get("reason") or i["post"])["uri"].rsplit("/", 1)[-1] for i in feed]
        return [s["id"] for s in self.server.statuses["100"]]

    def page_requests(self):
        return self.server.seen(self.pages)

    def cursor_of(self, seen: Seen) -> str | None:
        return seen.query.get(self.cursor)

    def argv(self, out, *extra) -> list[str]:
        """The command line of the real CLI (for the tests that signal a process)."""
        return ["collect", self.spec, "--out", str(out), *self.options, *extra]

    def collect(self, out, **kwargs):
        """Collect through the library, with events (see fakes.collect_live)."""
        return collect_live(self.spec, out, self.extra, **kwargs)

    # A page as a hostile server makes it ------------------------------------------

    def page(self, seen: Seen, *, onward: str | None = ..., items=None, keep=True) -> Answer:
        """The normal answer to ``seen``, with ``onward`` as the cursor to the next page
        (None: no next page), ``items`` (the platform's raw items) added at its end, or
        (``keep=False``) only those items."""
        status, headers, body = self.server.handle(seen)
        data = json.loads(body)
        listed = data if self.name == "mastodon" else data.get(self.item_key, [])
        listed = ([*listed] if keep else []) + list(items or ())
        if self.name == "mastodon":
            data = listed
        else:
            data[self.item_key] = listed
        if onward is not ...:
            if self.name == "mastodon":
                headers = dict(headers)
                headers.pop("Link", None)
                if onward is not None:
                    base = f"{self.server.url}/api/v1/accounts/100/statuses?limit=40"
                    headers["Link"] = f'<{base}&max_id={onward}>; rel="next"'
            elif self.name == "x":
                data.setdefault("meta", {"result_count": len(listed)})
                data["meta"].pop("next_token", None)
                if onward is not None:
                    data["meta"]["next_token"] = onward
            else:
                data.pop("cursor", None)
                if onward is not None:
                    data["cursor"] = onward
        return status, headers, json.dumps(data).encode()

    @property
    def item_key(self) -> str:
        return {"x": "data", "bsky": "feed", "mastodon": ""}[self.name]

    def items_of(self, answer: Answer) -> list:
        data = json.loads(answer[2])
        return data if self.name == "mastodon" else data.get(self.item_key, [])

    def next_cursor(self, answer: Answer) -> str | None:
        _, headers, body = answer
        if self.name == "mastodon":
            match = re.search(r"max_id=([^>&]+)>; rel=\"next\"", headers.get("Link", ""))
            return match[1] if match else None
        data = json.loads(body)
        return (
            (data.get("meta") or {}).get("next_token") if self.name == "x" else data.get("cursor")
        )


@pytest.fixture(params=NAMES, name="platform")
def platform_fixture(request, monkeypatch):
    """Each of the three platforms in turn (import this to use ``platform`` in a test)."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform(request.param)
    with platform.server:
        yield platform
