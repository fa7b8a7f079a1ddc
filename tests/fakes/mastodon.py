"""A fake Mastodon instance: account lookup and an account's statuses.

As documented: ``GET /api/v1/accounts/lookup?acct=`` and
``GET /api/v1/accounts/:id/statuses?limit=&max_id=&since_id=&min_id=`` answering a list
newest first with a ``Link`` header (``rel="next"``: ``max_id``; ``rel="prev"``:
``min_id``); ``GET /api/v1/instance``; errors are ``{"error": ...}``. With
``require_token`` every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import Answer, FakeServer, Seen, as_json, sample_texts

FIRST_ID = 110_000_000_000_000_000
START = datetime(2023, 6, 1, tzinfo=timezone.utc)
VISIBILITIES = ("public", "public", "unlisted", "public", "private", "public", "direct")


class FakeMastodon(FakeServer):
    def __init__(self, domain: str = "social.example", page_size: int = 10) -> None:
        super().__init__()
        self.domain = domain
        self.page_size = page_size
        self.accounts: dict[str, dict] = {}  # username -> account
        self.statuses: dict[str, list[dict]] = {}  # account id -> statuses, newest first
        self.require_token: str | None = None
        self._next_id = FIRST_ID

    def add_account(self, username: str, count: int = 0, **extra) -> dict:
        account = {
            "id": str(100 + len(self.accounts)),
            "username": username,
            "acct": username,
            "display_name": username.title(),
            "locked": False,
            "bot": False,
            "created_at": "2022-11-01T00:00:00.000Z",
            "note": '<p>A fake account for <a href="https://example.com">tests</a></p>',
            "url": f"https://{self.domain}/@{username}",
            "avatar": f"https://{self.domain}/avatars/{username}.png",
            "avatar_static": f"https://{self.domain}/avatars/{username}.png",
            "header": "",
            "header_static": "",
            "followers_count": 3,
            "following_count": 1,
            "statuses_count": count,
            "last_status_at": "2023-06-01",
            "emojis": [],
            "fields": [],
            **extra,
        }
        self.accounts[username.lower()] = account
        self.statuses[account["id"]] = []
        self.add_statuses(username, count)
        return account

    def add_statuses(self, username: str, count: int) -> list[dict]:
        """New statuses, newer than all before, of every visibility, with boosts, replies
        and quotes among them."""
        account = self.accounts[username.lower()]
        new = []
        for text in sample_texts(count, "MERCUTIO"):
            self._next_id += 1000
            n = (self._next_id - FIRST_ID) // 1000
            sid = str(self._next_id)
            status = {
                "id": sid,
                "uri": f"https://{self.domain}/users/{username}/statuses/{sid}",
                "url": f"https://{self.domain}/@{username}/{sid}",
                "created_at": (START + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "account": account,
                "content": f"<p>{text.replace('&', '&amp;').replace('<', '&lt;')}</p>",
                "visibility": VISIBILITIES[n % len(VISIBILITIES)],
                "sensitive": False,
                "spoiler_text": "",
                "in_reply_to_id": None,
                "in_reply_to_account_id": None,
                "reblog": None,
                "language": "en",
                "replies_count": 0,
                "reblogs_count": 0,
                "favourites_count": 0,
                "media_attachments": [],
                "mentions": [],
                "tags": [],
                "emojis": [],
            }
            if n % 9 == 1:  # a boost: the wrapper has no content of its own
                status["content"], status["language"] = "", None
                status["reblog"] = {
                    **status,
                    "id": str(n),
                    "account": {
                        **account,
                        "id": "9",
                        "username": "tybalt",
                        "acct": "tybalt@other.example",
                    },
                    "url": f"https://other.example/@tybalt/{n}",
                    "reblog": None,
                    "content": f"<p>{text}</p>",
                }
            elif n % 9 == 3:
                status["in_reply_to_id"], status["in_reply_to_account_id"] = "42", "9"
            elif n % 9 == 5:
                status["quote"] = {"state": "accepted", "quoted_status": None}
            elif n % 9 == 7:
                status["content"] = "<p>ha!</p>"
            new.append(status)
        self.statuses[account["id"]][:0] = reversed(new)
        return new

    def handle(self, seen: Seen) -> Answer:
        if self.require_token and seen.headers.get("authorization") != (
            f"Bearer {self.require_token}"
        ):
            return as_json({"error": "This method requires an authenticated user"}, 401)
        parts = seen.path.strip("/").split("/")
        if seen.path == "/api/v1/instance":
            return as_json({"uri": self.domain, "title": "Fake", "version": "4.3.0"})
        if seen.path == "/api/v1/accounts/lookup":
            account = self.accounts.get(seen.query.get("acct", "").lower())
            if account is None:
                return as_json({"error": "Record not found"}, 404)
            return as_json(account)
        if parts[:3] == ["api", "v1", "accounts"] and len(parts) == 5 and parts[4] == "statuses":
            if parts[3] not in self.statuses:
                return as_json({"error": "Record not found"}, 404)
            return self._statuses(parts[3], seen.query)
        return as_json({"error": "Not found"}, 404)

    def _statuses(self, account_id: str, query: dict[str, str]) -> Answer:
        size = min(self.page_size, int(query.get("limit", 20)))
        items = self.statuses[account_id]
        if "max_id" in query:
            items = [s for s in items if int(s["id"]) < int(query["max_id"])]
        if "since_id" in query:
            items = [s for s in items if int(s["id"]) > int(query["since_id"])]
        if "min_id" in query:  # the page just after min_id (oldest first), shown newest first
            items = [s for s in items if int(s["id"]) > int(query["min_id"])][-size:]
        page = items[:size]
        headers = {}
        if page:
            base = f"{self.url}/api/v1/accounts/{account_id}/statuses?limit={size}"
            headers["Link"] = (
                f'<{base}&max_id={page[-1]["id"]}>; rel="next", '
                f'<{base}&min_id={page[0]["id"]}>; rel="prev"'
            )
        return as_json(page, 200, headers)
