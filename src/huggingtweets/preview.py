"""The card's pictures: the preview (avatars, names, a sample post) and initials avatars.

Drawn with Pillow from local fonts only (DejaVu when installed, else Pillow's own
default font), so a card can be written offline. Avatars are fetched when a URL is
known and the network answers; otherwise each account gets its initials on a colour.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

WIDTH, HEIGHT = 1200, 630
AVATAR_FETCH_TIMEOUT_S = 4.0
AVATAR_MAX_BYTES = 5_000_000

_INK = (20, 23, 26)
_MUTED = (83, 100, 113)
_BOX = (243, 246, 249)
_PALETTE = [
    (29, 155, 240),
    (249, 24, 128),
    (0, 186, 124),
    (255, 122, 0),
    (120, 86, 255),
    (0, 150, 160),
    (220, 60, 60),
    (90, 110, 130),
]


@dataclass(frozen=True)
class Person:
    """What the pictures show of one account."""

    handle: str
    name: str
    avatar_url: str | None = None


@lru_cache(maxsize=16)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when the system has it, else Pillow's bundled default font at ``size``."""
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf") if bold else ("DejaVuSans.ttf",):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def colour_for(handle: str) -> tuple[int, int, int]:
    """A stable colour per handle (the same account always gets the same colour)."""
    digest = hashlib.blake2b(handle.casefold().encode("utf-8"), digest_size=2).digest()
    return _PALETTE[int.from_bytes(digest, "little") % len(_PALETTE)]


def initials(name: str, handle: str) -> str:
    words = [w for w in name.split() if w[:1].isalnum()] or [handle.lstrip("@")]
    letters = "".join(w[0] for w in words[:2]).upper()
    return letters or "?"


def initials_avatar(person: Person, size: int) -> Image.Image:
    """A disc in the account's colour with its initials, on a transparent background."""
    scale = 4  # draw large, then downsample: smooth edges without antialiasing support
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, big - 1, big - 1), fill=colour_for(person.handle))
    letters = initials(person.name, person.handle)
    face = font(int(big * (0.42 if len(letters) < 2 else 0.36)), bold=True)
    draw.text((big / 2, big / 2), letters, font=face, fill="white", anchor="mm")
    return image.resize((size, size), Image.LANCZOS)


def fetch_avatar(url: str | None, timeout: float = AVATAR_FETCH_TIMEOUT_S) -> Image.Image | None:
    """The account's picture, or None when there is no URL, no network, or no image.

    Skipped when ``HF_HUB_OFFLINE`` is set (the Hugging Face libraries' offline switch).
    """
    # Read now, not huggingface_hub's import-time constant; "0" means online, as there.
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    if not url or not url.startswith(("https://", "http://")) or offline:
        return None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "huggingtweets"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(AVATAR_MAX_BYTES + 1)
        if len(data) > AVATAR_MAX_BYTES:
            return None
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGBA")
    except (OSError, ValueError, http.client.HTTPException, Image.DecompressionBombError):
        # No network, an HTTP error or a timeout (OSError); a URL that cannot be sent, such
        # as one with a space (http.client.InvalidURL, or ValueError); a broken answer
        # (HTTPException); not an image (OSError): the initials stand in.
        return None


def circle(image: Image.Image, size: int) -> Image.Image:
    """``image`` cropped to a centred disc of ``size`` pixels."""
    square = ImageOps.fit(image.convert("RGBA"), (size, size), Image.LANCZOS)
    mask = Image.new("L", (size * 4, size * 4), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size * 4 - 1, size * 4 - 1), fill=255)
    square.putalpha(mask.resize((size, size), Image.LANCZOS))
    return square


def avatar(person: Person, size: int) -> Image.Image:
    fetched = fetch_avatar(person.avatar_url)
    return circle(fetched, size) if fetched is not None else initials_avatar(person, size)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _robot(draw: ImageDraw.ImageDraw, x: float, y: float, size: float, colour) -> None:
    """A small robot head (the fonts here have no colour emoji for 🤖)."""
    s = size
    draw.line((x + s * 0.5, y, x + s * 0.5, y + s * 0.18), fill=colour, width=max(2, int(s / 14)))
    draw.ellipse((x + s * 0.42, y - s * 0.06, x + s * 0.58, y + s * 0.1), fill=colour)
    draw.rounded_rectangle(
        (x + s * 0.08, y + s * 0.18, x + s * 0.92, y + s), radius=s * 0.18, fill=colour
    )
    for ex in (0.32, 0.68):
        draw.ellipse(
            (x + s * (ex - 0.09), y + s * 0.42, x + s * (ex + 0.09), y + s * 0.6), fill="white"
        )
    draw.rounded_rectangle(
        (x + s * 0.3, y + s * 0.74, x + s * 0.7, y + s * 0.84), radius=s * 0.04, fill="white"
    )


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, sizes: Sequence[int], bold: bool):
    """The largest font of ``sizes`` that fits ``text`` in ``width``; the text cut with … if
    even the smallest does not."""
    for size in sizes:
        face = font(size, bold)
        if draw.textlength(text, font=face) <= width:
            return text, face
    face = font(sizes[-1], bold)
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text.rstrip() + "…", face


def _wrap(draw, text: str, face, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=face) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while draw.textlength(current, font=face) > width:  # a word longer than a line
            cut = len(current)
            while cut > 1 and draw.textlength(current[:cut], font=face) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
        if len(lines) >= max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    if len(lines) == max_lines and " ".join(lines) != " ".join(text.split()):
        last = lines[-1]
        while last and draw.textlength(last + " …", font=face) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return lines


def draw_preview(
    people: Sequence[Person], sample: str | None, *, avatars: Sequence[Image.Image] | None = None
) -> Image.Image:
    """The preview picture (1200×630, the size link previews use) of a bot of ``people``."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    size = 150
    faces = list(avatars) if avatars is not None else [avatar(p, size) for p in people]
    gap = 28
    row = len(faces) * size + (len(faces) - 1) * gap
    x = (WIDTH - row) // 2
    for face in faces:
        face = face if face.size == (size, size) else face.resize((size, size), Image.LANCZOS)
        image.paste(face, (x, 36), face)
        x += size + gap

    label = "AI CYBORG" if len(people) > 1 else "AI BOT"
    label_font = font(30, bold=True)
    label_width = draw.textlength(label, font=label_font)
    icon = 34
    left = (WIDTH - label_width) / 2 - icon - 14
    _robot(draw, left, 206, icon, _INK)
    draw.text((WIDTH / 2, 224), label, font=label_font, fill=_INK, anchor="mm")
    _robot(draw, (WIDTH + label_width) / 2 + 14, 206, icon, _INK)

    names, names_font = _fit(draw, " & ".join(p.name for p in people), 1100, (44, 38, 32), True)
    draw.text((WIDTH / 2, 282), names, font=names_font, fill=_INK, anchor="mm")
    handles, handles_font = _fit(
        draw, "@" + "-".join(p.handle for p in people), 1100, (28, 24), False
    )
    draw.text((WIDTH / 2, 332), handles, font=handles_font, fill=_MUTED, anchor="mm")

    if sample:
        post_font = font(30)
        lines = _wrap(draw, sample, post_font, WIDTH - 2 * 90 - 64, max_lines=4)
        box = (90, 372, WIDTH - 90, 372 + 48 + 40 * len(lines))
        draw.rounded_rectangle(box, radius=22, fill=_BOX)
        y = box[1] + 24
        for line in lines:
            draw.text((box[0] + 32, y), line, font=post_font, fill=_INK)
            y += 40
    draw.text(
        (WIDTH / 2, HEIGHT - 24), "made with huggingtweets", font=font(20), fill=_MUTED, anchor="mm"
    )
    return image
