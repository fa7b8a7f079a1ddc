"""Builders of small, well-formed exports in the platforms' real formats, for focused tests.

The real exports in ../shared/data cover real mess and size; these cover the format
variants that those two do not (older tweet.js, multi-part, note tweets, account.js, ...).
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def ytd(kind: str, entries: list, part: int = 0) -> str:
    return f"window.YTD.{kind}.part{part} = " + json.dumps(entries, indent=2, ensure_ascii=False)


def tweet(
    tweet_id: str,
    text: str,
    created_at: str = "Wed Oct 19 20:07:25 +0000 2022",
    *,
    reply_to: str | None = None,
    urls: tuple[str, ...] = (),
    lang: str = "en",
) -> dict:
    data = {
        "id_str": tweet_id,
        "id": tweet_id,
        "full_text": text,
        "created_at": created_at,
        "lang": lang,
        "retweeted": False,
        "entities": {"urls": [{"expanded_url": u, "url": "https://t.co/x"} for u in urls]},
    }
    if reply_to:
        data["in_reply_to_status_id_str"] = reply_to
    return data


def write_x_export(
    root: Path,
    tweets: list[dict],
    *,
    kind: str = "tweets",
    wrapped: bool = True,
    account: dict | None = None,
    profile: dict | None = None,
    notes: list[dict] | None = None,
    extra_files: dict[str, str] | None = None,
    parts: int = 1,
) -> Path:
    """An export folder ``root`` with data/<kind>.js (or <kind>-partN.js files)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    entries = [{"tweet": t} if wrapped else t for t in tweets]
    if parts == 1:
        (data / f"{kind}.js").write_text(ytd(kind, entries), "utf-8")
    else:
        size = -(-len(entries) // parts)
        for i in range(parts):
            chunk = entries[i * size : (i + 1) * size]
            (data / f"{kind}-part{i + 1}.js").write_text(ytd(kind, chunk, i + 1), "utf-8")
    if account:
        (data / "account.js").write_text(ytd("account", [{"account": account}]), "utf-8")
    if profile:
        (data / "profile.js").write_text(ytd("profile", [{"profile": profile}]), "utf-8")
    if notes:
        (data / "note-tweet.js").write_text(
            ytd("note_tweet", [{"noteTweet": n} for n in notes]), "utf-8"
        )
    for name, content in (extra_files or {}).items():
        (data / name).write_text(content, "utf-8")
    return root


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path


def status(
    status_id: str,
    html: str,
    *,
    to: list[str] | None = None,
    cc: list[str] | None = None,
    reply_to: str | None = None,
    kind: str = "Note",
    lang: str = "en",
) -> dict:
    to = [PUBLIC] if to is None else to
    cc = ["https://example.social/users/alice/followers"] if cc is None else cc
    obj = {
        "id": f"https://example.social/users/alice/statuses/{status_id}",
        "type": kind,
        "inReplyTo": reply_to,
        "published": "2023-01-02T03:04:05Z",
        "url": f"https://example.social/@alice/{status_id}",
        "to": to,
        "cc": cc,
        "content": html,
        "contentMap": {lang: html},
    }
    return {
        "id": obj["id"] + "/activity",
        "type": "Create",
        "actor": "https://example.social/users/alice",
        "published": obj["published"],
        "to": to,
        "cc": cc,
        "object": obj,
    }


def boost(status_id: str) -> dict:
    return {
        "id": f"https://example.social/users/alice/statuses/{status_id}/activity",
        "type": "Announce",
        "actor": "https://example.social/users/alice",
        "published": "2023-01-02T03:04:05Z",
        "to": [PUBLIC],
        "cc": [],
        "object": "https://other.social/users/bob/statuses/1",
    }


def write_mastodon_export(root: Path, activities: list[dict], *, name: str = "Alice") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    actor = {
        "id": "https://example.social/users/alice",
        "type": "Person",
        "preferredUsername": "alice",
        "name": name,
        "url": "https://example.social/@alice",
        "followers": "https://example.social/users/alice/followers",
        "summary": "<p>I write &amp; read.</p>",
        "icon": {"type": "Image", "url": "avatar.png"},
    }
    (root / "actor.json").write_text(json.dumps(actor), "utf-8")
    outbox = {
        "type": "OrderedCollection",
        "totalItems": len(activities),
        "orderedItems": activities,
    }
    (root / "outbox.json").write_text(json.dumps(outbox), "utf-8")
    return root


def sentences(n: int, words: int = 12, tag: str = "") -> list[str]:
    """n distinct, plain English posts of ``words`` words (enough text to train on)."""
    vocabulary = (
        "the quick brown fox jumps over lazy dogs while morning light falls across quiet "
        "river banks and distant hills"
    ).split()
    return [
        f"{tag}post {i} "
        + " ".join(vocabulary[(i * 7 + k) % len(vocabulary)] for k in range(words))
        for i in range(n)
    ]


def write_raw_zip(zip_path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip archive written byte by byte from already deflated entries
    ``(name, raw deflate data, CRC-32, declared inflated size)``: a test can declare any
    size, or build a gigabyte's stream without deflating a gigabyte."""
    body, directory = bytearray(), bytearray()
    for name, data, crc, size in entries:
        encoded = name.encode()
        offset = len(body)
        body += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
        )
        body += encoded + data
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded),
            0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        directory += encoded
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), len(body), 0
    )
    zip_path.write_bytes(bytes(body + directory + end))
    return zip_path


def deflated(data: bytes) -> tuple[bytes, int, int]:
    """(raw deflate data, CRC-32, size) of ``data``, for :func:`write_raw_zip`."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)


def deflated_run(byte: bytes, mebibytes: int) -> tuple[bytes, int, int]:
    """``mebibytes`` MiB of one byte, deflated in about 1 KB a MiB: a block compressed once
    with a full flush (which makes it stand alone) repeated, then the final block."""
    block = byte * (1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(block, crc)
    return one * mebibytes + packer.flush(), crc, mebibytes << 20
