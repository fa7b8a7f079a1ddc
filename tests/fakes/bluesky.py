"""A fake Bluesky AppView: the XRPC queries a logged-out reader uses.

As documented: ``GET /xrpc/app.bsky.actor.getProfile?actor=`` (a handle or DID) and
``GET /xrpc/app.bsky.feed.getAuthorFeed?actor=&limit=&cursor=&filter=`` answering
``{"feed": [FeedViewPost...], "cursor": ...}``, newest first; errors are
``{"error": ..., "message": ...}`` (an unknown actor: 400 InvalidRequest).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import Answer, FakeServer, Seen, as_json, sample_texts

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
_B32 = "234567abcdefghijklmnopqrstuvwxyz"  # the sortable alphabet of record keys (TIDs)


def tid(n: int) -> str:
    """A 13-character record key that sorts like ``n``."""
    out = ""
    for _ in range(13):
        n, r = divmod(n, 32)
        out = _B32[r] + out
    return out


def _time(n: int) -> str:
    return (START + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeBluesky(FakeServer):
    def __init__(self, page_size: int = 10) -> None:
        super().__init__()
        self.page_size = page_size
        self.profiles: dict[str, dict] = {}  # did -> profile
        self.feeds: dict[str, list[dict]] = {}  # did -> feed items, newest first
        self.errors: dict[str, tuple[str, str]] = {}  # actor -> (error, message)
        self._n = 0

    def add_account(self, handle: str, count: int = 0, labels: tuple[str, ...] = ()) -> dict:
        did = f"did:plc:{handle.split('.')[0]}{len(self.profiles):04d}"
        profile = {
            "did": did,
            "handle": handle,
            "displayName": handle.split(".")[0].title(),
            "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/bafkrei@jpeg",
            "description": "A fake account for tests",
            "postsCount": count,
            "followersCount": 3,
            "labels": [
                {
                    "src": did,
                    "uri": f"at://{did}/app.bsky.actor.profile/self",
                    "val": v,
                    "cts": _time(0),
                }
                for v in labels
            ],
        }
        self.profiles[did] = profile
        self.feeds[did] = []
        self.add_posts(handle, count)
        return profile

    def did(self, handle: str) -> str:
        return next(d for d, p in self.profiles.items() if p["handle"] == handle)

    def add_posts(self, handle: str, count: int) -> list[dict]:
        """New feed items, newer than all before: posts with, in turn, a repost, a reply,
        a quote and a short post."""
        did = self.did(handle)
        author = {"did": did, "handle": handle, "displayName": handle.split(".")[0].title()}
        other = {"did": "did:plc:nurse0000", "handle": "nurse.test"}
        items = []
        for text in sample_texts(count, "JULIET"):
            self._n += 1
            n, key = self._n, tid(10**12 + self._n)
            record: dict = {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": _time(n),
                "langs": ["en"],
            }
            post_author, item = author, {}
            kind = n % 8
            if kind == 1:  # a repost of someone else's post
                post_author = other
                item["reason"] = {
                    "$type": "app.bsky.feed.defs#reasonRepost",
                    "by": author,
                    "indexedAt": _time(n),
                    "uri": f"at://{did}/app.bsky.feed.repost/{key}",
                    "cid": "bafyreirepost",
                }
                record["createdAt"] = _time(n - 100)
            elif kind == 3:
                parent = {
                    "uri": "at://did:plc:nurse0000/app.bsky.feed.post/3kparent",
                    "cid": "bafyreiparent",
                }
                record["reply"] = {"root": parent, "parent": parent}
            elif kind == 5:
                record["embed"] = {
                    "$type": "app.bsky.embed.record",
                    "record": {
                        "uri": "at://did:plc:nurse0000/app.bsky.feed.post/3kquoted",
                        "cid": "bafyreiquoted",
                    },
                }
            elif kind == 7:
                record["text"] = "yes!"
            post_key = key if kind != 1 else tid(n)
            item["post"] = {
                "uri": f"at://{post_author['did']}/app.bsky.feed.post/{post_key}",
                "cid": f"bafyrei{n:08d}",
                "author": post_author,
                "record": record,
                "indexedAt": _time(n),
                "likeCount": 0,
            }
            items.append(item)
        self.feeds[did][:0] = reversed(items)
        return items

    def handle(self, seen: Seen) -> Answer:
        method = seen.path.removeprefix("/xrpc/")
        actor = seen.query.get("actor", "")
        if method not in ("app.bsky.actor.getProfile", "app.bsky.feed.getAuthorFeed"):
            return as_json({"error": "MethodNotImplemented", "message": "no such method"}, 501)
        if actor in self.errors:
            error, message = self.errors[actor]
            return as_json({"error": error, "message": message}, 400)
        did = (
            actor
            if actor in self.profiles
            else next((d for d, p in self.profiles.items() if p["handle"] == actor), None)
        )
        if did is None:
            return as_json({"error": "InvalidRequest", "message": "Profile not found"}, 400)
        if method == "app.bsky.actor.getProfile":
            return as_json(self.profiles[did])
        return self._feed(did, seen.query)

    def _feed(self, did: str, query: dict[str, str]) -> Answer:
        size = min(self.page_size, int(query.get("limit", 50)))
        items = self.feeds[did]
        cursor = query.get("cursor")
        if cursor:  # the sort time of the first item to return
            items = [i for i in items if _sort_time(i) <= cursor]
        page, rest = items[:size], items[size:]
        body: dict = {"feed": page}
        if rest:
            body["cursor"] = _sort_time(rest[0])
        return as_json(body)


def _sort_time(item: dict) -> str:
    return (item.get("reason") or item["post"])["indexedAt"]
