"""A fake X API v2: user lookup by username and a user's posts, paged by token.

As documented: ``GET /2/users/by/username/:username`` (``user.fields``) and
``GET /2/users/:id/tweets`` (``max_results``, ``pagination_token``, ``since_id``,
``tweet.fields``, ``expansions``) answering ``{"data": [...], "meta": {"next_token": ...}}``;
bearer-token authentication; an unknown or suspended user is a 200 with ``errors``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import Answer, FakeServer, Seen, as_json, sample_texts

FIRST_ID = 1_600_000_000_000_000_000
START = datetime(2023, 1, 1, tzinfo=timezone.utc)


class FakeX(FakeServer):
    def __init__(self, token: str, page_size: int = 10) -> None:
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.users: dict[str, dict] = {}  # username (lowercase) -> user object
        self.suspended: set[str] = set()
        self.timelines: dict[str, list[dict]] = {}  # user id -> posts, newest first
        self._next_id = FIRST_ID

    def add_user(self, username: str, count: int = 0, protected: bool = False) -> dict:
        user = {
            "id": str(len(self.users) + 1000),
            "name": username.title() + " Example",
            "username": username,
            "description": "A fake account for tests",
            "protected": protected,
            "profile_image_url": f"https://pbs.twimg.com/profile_images/1/{username}_normal.jpg",
            "public_metrics": {"tweet_count": count, "followers_count": 3},
        }
        self.users[username.lower()] = user
        self.timelines[user["id"]] = []
        self.add_posts(username, count)
        return user

    def add_posts(self, username: str, count: int) -> list[dict]:
        """``count`` new posts, newer than all before: plain posts with, in turn, a
        retweet, a reply, a quote, a long post (note_tweet) and a short one."""
        user = self.users[username.lower()]
        timeline = self.timelines[user["id"]]
        new = []
        for text in sample_texts(count):
            self._next_id += 1000
            n = self._next_id // 1000 % 1000
            post = {
                "id": str(self._next_id),
                "text": text,
                "created_at": (START + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "lang": "en",
                "edit_history_tweet_ids": [str(self._next_id)],
            }
            kind = n % 10
            if kind == 1:
                post["text"] = f"RT @juliet: {text}"
                post["referenced_tweets"] = [{"type": "retweeted", "id": str(n)}]
            elif kind == 3:
                post["text"] = f"@mercutio {text}"
                post["referenced_tweets"] = [{"type": "replied_to", "id": str(n)}]
                post["in_reply_to_user_id"] = "77"
            elif kind == 5:
                post["referenced_tweets"] = [{"type": "quoted", "id": str(n)}]
            elif kind == 7:
                post["note_tweet"] = {"text": f"{text} And then, at length, {text}"}
                post["text"] = text[:100] + "… https://t.co/abc"
            elif kind == 9:
                post["text"] = "so true"
            new.append(post)
        timeline[:0] = reversed(new)
        return new

    def all_ids(self, username: str) -> list[str]:
        return [p["id"] for p in self.timelines[self.users[username.lower()]["id"]]]

    def handle(self, seen: Seen) -> Answer:
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return as_json(
                {
                    "title": "Unauthorized",
                    "type": "about:blank",
                    "status": 401,
                    "detail": "Unauthorized",
                },
                401,
            )
        parts = seen.path.strip("/").split("/")
        if parts[:4] == ["2", "users", "by", "username"] and len(parts) == 5:
            return self._user(parts[4])
        if parts[:2] == ["2", "users"] and len(parts) == 4 and parts[3] == "tweets":
            return self._tweets(parts[2], seen.query)
        return as_json({"title": "Not Found Error", "status": 404}, 404)

    def _user(self, username: str) -> Answer:
        if username.lower() in self.suspended:
            return as_json(
                {
                    "errors": [
                        {
                            "value": username,
                            "detail": f"User has been suspended: [{username}].",
                            "title": "Forbidden",
                            "resource_type": "user",
                            "parameter": "username",
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                }
            )
        user = self.users.get(username.lower())
        if user is None:
            return as_json(
                {
                    "errors": [
                        {
                            "value": username,
                            "detail": f"Could not find user with username: [{username}].",
                            "title": "Not Found Error",
                            "resource_type": "user",
                            "parameter": "username",
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                }
            )
        return as_json({"data": user})

    def _tweets(self, user_id: str, query: dict[str, str]) -> Answer:
        if user_id not in self.timelines:
            return as_json({"title": "Not Found Error", "status": 404}, 404)
        size = min(self.page_size, int(query.get("max_results", 10)))
        posts = self.timelines[user_id][:3200]  # the API's limit
        if "since_id" in query:
            posts = [p for p in posts if int(p["id"]) > int(query["since_id"])]
        token = query.get("pagination_token")
        if token:  # "next-<id>": from that post on, whatever was added since
            posts = [p for p in posts if int(p["id"]) <= int(token.removeprefix("next-"))]
        page, rest = posts[:size], posts[size:]
        meta: dict = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if rest:
            meta["next_token"] = f"next-{rest[0]['id']}"
        fields = set(query.get("tweet.fields", "").split(","))
        data = [
            {k: v for k, v in p.items() if k in fields | {"id", "text", "edit_history_tweet_ids"}}
            for p in page
        ]
        return as_json({"data": data, "meta": meta} if data else {"meta": meta})
