"""The Mastodon account export (Preferences → Import and export → Request your archive).

``outbox.json`` is an ActivityStreams ``OrderedCollection``: a ``Create`` of a ``Note`` or
``Question`` is a post (its ``content`` is HTML), an ``Announce`` is a boost.
``actor.json`` names the account.
"""

from __future__ import annotations

from urllib.parse import urlparse

import orjson

from ..errors import HuggingtweetsError
from ..records import Account, Collected, Post, check_handle
from ..times import utc_iso
from .htmltext import html_to_text
from .tree import Tree, decode_utf8

PLATFORM = "mastodon"
PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})
POST_TYPES = frozenset({"Note", "Question"})


def looks_like_export(tree: Tree) -> bool:
    return tree.find("outbox.json") is not None


def visibility(activity: dict, followers_url: str | None) -> str:
    """Mastodon's four levels, from the audience: public, unlisted, followers, direct."""
    to = _as_list(activity.get("to"))
    cc = _as_list(activity.get("cc"))
    if PUBLIC & set(to):
        return "public"
    if PUBLIC & set(cc):
        return "unlisted"
    if any(a == followers_url or a.endswith("/followers") for a in to + cc):
        return "followers"
    return "direct"


def _as_list(value) -> list[str]:
    """An audience as strings (an entry of another shape matches no public address)."""
    if value is None:
        return []
    return [str(a) for a in (value if isinstance(value, list) else [value])]


def _text(value) -> str | None:
    """A string field; anything else (a damaged export) as missing."""
    return value if isinstance(value, str) else None


def _load_json(tree: Tree, name: str) -> dict:
    raw = tree.read_bytes(name)
    decode_utf8(raw, f"{tree.label}:{name}")
    try:
        data = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        # orjson counts lines and columns (1-based, in characters) on the decoded text.
        raise HuggingtweetsError(
            f"invalid JSON in {tree.label}:{name} at line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}; the export may be damaged, download it again"
        ) from None
    if not isinstance(data, dict):
        raise HuggingtweetsError(f"{tree.label}:{name}: expected a JSON object")
    return data


def acct_from_actor(actor: dict) -> str | None:
    """'user@instance' from an ActivityPub actor document."""
    user = actor.get("preferredUsername")
    host = urlparse(str(actor.get("url") or actor.get("id") or "")).hostname
    if not user:
        return None
    return f"{user}@{host}" if host else user


def read_mastodon_export(tree: Tree, handle: str | None = None) -> Collected:
    actor_name = tree.find("actor.json")
    actor = _load_json(tree, actor_name) if actor_name else {}
    handle = acct_from_actor(actor) if handle is None else handle
    if handle is None:
        raise HuggingtweetsError(
            f"{tree.label} has no actor.json to name the account: pass --handle USER@INSTANCE"
        )
    handle = check_handle(handle)
    icon = actor.get("icon") if isinstance(actor.get("icon"), dict) else {}
    avatar = _text(icon.get("url"))
    summary = _text(actor.get("summary"))
    account = Account(
        platform=PLATFORM,
        handle=handle,
        display_name=_text(actor.get("name")) or None,
        avatar_url=avatar if avatar and avatar.startswith("http") else None,
        description=html_to_text(summary) if summary else None,
    )
    followers = actor.get("followers")

    outbox = _load_json(tree, tree.find("outbox.json"))
    items = outbox.get("orderedItems")
    if not isinstance(items, list):
        raise HuggingtweetsError(f"{tree.label}: outbox.json has no orderedItems list")
    posts: list[Post] = []
    for activity in items:
        if not isinstance(activity, dict):
            continue
        kind = activity.get("type")
        obj = activity.get("object")
        if kind == "Create" and isinstance(obj, dict) and _text(obj.get("type")) in POST_TYPES:
            content_map = obj.get("contentMap")
            posts.append(
                Post(
                    platform=PLATFORM,
                    id=str(obj.get("id", "")).rstrip("/").rsplit("/", 1)[-1],
                    author=handle,
                    created_at=utc_iso(obj.get("published") or activity.get("published")),
                    text=html_to_text(_text(obj.get("content")) or ""),
                    is_reply=bool(obj.get("inReplyTo")),
                    is_quote=bool(obj.get("quoteUri") or obj.get("quoteUrl")),
                    visibility=visibility(activity, followers),
                    lang=next(iter(content_map), None) if isinstance(content_map, dict) else None,
                    url=_text(obj.get("url")) or _text(obj.get("id")),
                )
            )
        elif kind == "Announce":
            posts.append(
                Post(
                    platform=PLATFORM,
                    id=str(activity.get("id", ""))
                    .rstrip("/")
                    .removesuffix("/activity")
                    .rsplit("/", 1)[-1],
                    author=handle,
                    created_at=utc_iso(activity.get("published")),
                    text="",
                    is_repost=True,
                    visibility=visibility(activity, followers),
                    url=obj if isinstance(obj, str) else None,
                )
            )
    return Collected(account, posts)
