"""The Mastodon account export (Preferences → Import and export → Request your archive).

``outbox.json`` is an ActivityStreams ``OrderedCollection``: a ``Create`` of a ``Note`` or
``Question`` is a post (its ``content`` is HTML), an ``Announce`` is a boost.
``actor.json`` names the account.

Visibility comes from the audience (``to`` / ``cc``): public, unlisted, followers-only or
direct. A ``Create`` carries an audience and so does the post it wraps; Mastodon writes
the same one on both, but where they differ (a ``Create`` addressed publicly whose post is
followers-only, as a damaged or hand-edited export may hold) the stricter of the two wins,
so that such a post counts as private and never reaches a dataset. A post without an
audience of its own takes its ``Create``'s.
"""

from __future__ import annotations

from urllib.parse import urlparse

import orjson

from huggingtweets.collect.htmltext import html_to_text
from huggingtweets.collect.registry import register_file_format
from huggingtweets.collect.tree import MAX_FILE_BYTES, MAX_SMALL_FILE_BYTES, Tree, decode_utf8
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import Account, Collected, Post, check_handle
from huggingtweets.core.times import utc_iso

PLATFORM = "mastodon"
PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})
POST_TYPES = frozenset({"Note", "Question"})
# From the widest audience to the narrowest: of two readings, the later one wins.
_STRICTNESS = {"public": 0, "unlisted": 1, "followers": 2, "direct": 3}


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


def post_visibility(activity: dict, obj: dict, followers_url: str | None) -> str:
    """The stricter of the ``Create``'s audience and its post's own (when it has one)."""
    outer = visibility(activity, followers_url)
    if "to" not in obj and "cc" not in obj:
        return outer
    inner = visibility(obj, followers_url)
    return max(outer, inner, key=_STRICTNESS.__getitem__)


def _as_list(value) -> list[str]:
    """An audience as strings (an entry of another shape matches no public address)."""
    if value is None:
        return []
    return [str(a) for a in (value if isinstance(value, list) else [value])]


def _text(value) -> str | None:
    """A string field; anything else (a damaged export) as missing."""
    return value if isinstance(value, str) else None


def _load_json(tree: Tree, name: str, limit: int = MAX_FILE_BYTES) -> dict:
    raw = tree.read_bytes(name, limit)
    decode_utf8(raw, f"{tree.label}:{name}")
    try:
        data = orjson.loads(memoryview(raw)[3:] if raw[:3] == b"\xef\xbb\xbf" else raw)
    except orjson.JSONDecodeError as exc:
        # orjson counts lines and columns (1-based, in characters) on the decoded text.
        raise HuggingtweetsError(
            f"invalid JSON in {tree.label}:{name} at line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}; the export may be damaged, download it again"
        ) from None
    if not isinstance(data, dict):
        raise HuggingtweetsError(f"{tree.label}:{name}: expected a JSON object")
    return data


def acct_from_actor(actor: dict, where: str = "actor.json") -> str | None:
    """'user@instance' from an ActivityPub actor document (``where`` names it in errors)."""
    user = actor.get("preferredUsername")
    if not user:
        return None
    if not isinstance(user, str):
        raise HuggingtweetsError(
            f"{where}: preferredUsername is not a name ({user!r:.60}); the export may be "
            "damaged: pass --handle USER@INSTANCE"
        )
    key = "url" if actor.get("url") else "id"
    host = _host(actor.get(key), f"{where}: {key}")
    return f"{user}@{host}" if host else user


def _host(value, where: str) -> str | None:
    """The host of a URL as ActivityPub writes it: a string, a Link ``{"href": ...}``, or a
    list of them (the first counts); a value of another shape or a malformed URL is an
    error, never a traceback."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("href")
    if value is None:
        return None
    problem = None
    if not isinstance(value, str):
        problem = f"is not a URL ({value!r:.60})"
    else:
        try:
            return urlparse(value).hostname
        except ValueError as exc:
            problem = f"is not a valid URL ({value!r:.80}: {exc})"
    raise HuggingtweetsError(
        f"{where} {problem}; the export may be damaged: pass --handle USER@INSTANCE"
    )


def read_mastodon_export(tree: Tree, handle: str | None = None) -> Collected:
    actor_name = tree.find("actor.json")
    actor = _load_json(tree, actor_name, MAX_SMALL_FILE_BYTES) if actor_name else {}
    if handle is None:
        handle = acct_from_actor(actor, f"{tree.label}:{actor_name}")
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
                    visibility=post_visibility(activity, obj, followers),
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


register_file_format(
    "mastodon-export",
    lambda given: looks_like_export(given.tree) if given.archive else given.name == "outbox.json",
    lambda given, options: read_mastodon_export(given.tree, options.handle),
    "a Mastodon export (.zip, folder or outbox.json)",
    platform=PLATFORM,
    suffixes=(".zip", ".json"),
    folder="a Mastodon export (no outbox.json)",
)
