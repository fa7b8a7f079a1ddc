"""The card's pictures: the preview (avatars, names, a sample post) and initials avatars.

Drawn with Pillow from local fonts only, so a card can be written offline. Text in any
script takes, character by character, the first system font that has it (found through
fontconfig: DejaVu Sans first, then Noto for other scripts, Noto Color Emoji for emoji),
right-to-left text is shaped and ordered; see ``fonts.py`` for where the fonts come from
(Debian: fonts-noto-core, fonts-noto-cjk, fonts-noto-color-emoji). A character no font
here has is left out, never drawn as a box; :func:`missing_fonts` then returns the one
line to show the user (the package to install). Avatars are fetched when a URL is known
and the network answers; otherwise each account gets its initials on a colour.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

from huggingtweets.card.fonts import Face, face, missing_fonts, reset_missing_fonts
from huggingtweets.card.scripts import clusters, han_language, is_emoji

__all__ = [
    "Person",
    "avatar",
    "circle",
    "colour_for",
    "draw_preview",
    "fetch_avatar",
    "initials",
    "initials_avatar",
    "missing_fonts",  # the one line to show when a picture lacked a font (fonts.py)
    "png_bytes",
    "reset_missing_fonts",
]

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


def colour_for(handle: str) -> tuple[int, int, int]:
    """A stable colour per handle (the same account always gets the same colour)."""
    digest = hashlib.blake2b(handle.casefold().encode("utf-8"), digest_size=2).digest()
    return _PALETTE[int.from_bytes(digest, "little") % len(_PALETTE)]


def _first_letter(word: str) -> str:
    """The first letter of ``word`` with its marks (Devanagari's क्ष, Thai's เม: a vowel
    written before its consonant takes the consonant too)."""
    parts = clusters(word)
    if len(parts) > 1 and "\u0e40" <= parts[0][0] <= "\u0e44":  # Thai preposed vowels
        return parts[0] + parts[1]
    return parts[0] if parts else ""


def initials(name: str, handle: str) -> str:
    """Two initials for names in scripts with capitals ("Romeo Montague" → "RM"), one
    letter for the others (Chinese, Arabic ...), the emoji of a name made of emoji, else
    the handle's initial."""
    words = [w for w in name.split() if w[:1].isalnum()]
    if not words:
        first = clusters(name.strip())[:1]
        if first and is_emoji(first[0]):
            return first[0]
        words = [handle.lstrip("@")]
    firsts = [_first_letter(w) for w in words[:2]]
    if any(f[:1].isalpha() and f[:1].upper() == f[:1].lower() for f in firsts):
        return firsts[0]  # a script without capitals: one letter
    return "".join(firsts).upper() or "?"


def initials_avatar(person: Person, size: int) -> Image.Image:
    """A disc in the account's colour with its initials, on a transparent background."""
    scale = 4  # draw large, then downsample: smooth edges without antialiasing support
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, big - 1, big - 1), fill=colour_for(person.handle))
    letters = initials(person.name, person.handle)
    han = han_language(person.name)
    if face(40, True, han).drawable(letters) != letters:  # no font here: the handle's
        letters = initials("", person.handle)
    text = face(int(big * (0.42 if len(clusters(letters)) < 2 else 0.36)), True, han)
    text.draw(image, (big / 2, big / 2), letters, fill="white", anchor="mm")
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
    """A small robot head (drawn, so the same on every system, emoji font or not)."""
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


def _fit(text: str, width: int, sizes: Sequence[int], bold: bool, han: str) -> tuple[str, Face]:
    """The largest face of ``sizes`` that fits ``text`` in ``width``; the text cut with …
    if even the smallest does not."""
    for size in sizes:
        style = face(size, bold, han)
        if style.length(text) <= width:
            return text, style
    style = face(sizes[-1], bold, han)
    parts = clusters(text)
    while parts and style.length("".join(parts) + "…") > width:
        parts.pop()
    return "".join(parts).rstrip() + "…", style


# Closing punctuation and small kana that do not start a line (Japanese and Chinese rules).
_NO_LINE_START = set(
    "、。，．,.!?！？:;：；)）]］}｝」』】〕〉》”’ー…・ぁぃぅぇぉっゃゅょァィゥェォッャュョ"
)


def _wrap(text: str, style: Face, width: int, max_lines: int, rtl: bool) -> list[str]:
    def fits(line: str) -> bool:
        return style.length(line, rtl) <= width

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while not fits(current):  # a word longer than a line (Chinese, Japanese, Thai ...)
            parts = clusters(current)
            cut = len(parts)
            while cut > 1 and not fits("".join(parts[:cut])):
                cut -= 1
            while 1 < cut < len(parts) and parts[cut][0] in _NO_LINE_START:
                cut -= 1  # "。" and the like end a line, never start one
            lines.append("".join(parts[:cut]))
            current = "".join(parts[cut:])
        if len(lines) >= max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    if len(lines) == max_lines and " ".join(lines) != " ".join(text.split()):
        parts = clusters(lines[-1])
        while parts and not fits("".join(parts) + " …"):
            parts.pop()
        lines[-1] = "".join(parts).rstrip() + " …"
    return lines


def draw_preview(
    people: Sequence[Person],
    sample: str | None,
    *,
    avatars: Sequence[Image.Image] | None = None,
    language: str | None = None,
) -> Image.Image:
    """The preview picture (1200×630, the size link previews use) of a bot of ``people``.

    ``language``: the posts' main language (ISO 639), which picks the Chinese, Japanese
    or Korean shapes of Han characters when the text itself does not tell."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    size = 150
    faces = list(avatars) if avatars is not None else [avatar(p, size) for p in people]
    gap = 28
    row = len(faces) * size + (len(faces) - 1) * gap
    x = (WIDTH - row) // 2
    for picture in faces:
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.LANCZOS)
        image.paste(picture, (x, 36), picture)
        x += size + gap

    han = han_language(" ".join([*(p.name for p in people), sample or ""]), language)
    label = "AI CYBORG" if len(people) > 1 else "AI BOT"
    label_face = face(30, True, han)
    label_width = label_face.length(label)
    icon = 34
    left = (WIDTH - label_width) / 2 - icon - 14
    _robot(draw, left, 206, icon, _INK)
    label_face.draw(image, (WIDTH / 2, 224), label, fill=_INK, anchor="mm")
    _robot(draw, (WIDTH + label_width) / 2 + 14, 206, icon, _INK)

    # A name no font here can draw (every character left out) is shown as its handle.
    shown = [face(44, True, han).drawable(p.name).strip() or f"@{p.handle}" for p in people]
    names, names_face = _fit(" & ".join(shown), 1100, (44, 38, 32), True, han)
    names_face.draw(image, (WIDTH / 2, 282), names, fill=_INK, anchor="mm")
    handles, handles_face = _fit(
        "@" + "-".join(p.handle for p in people), 1100, (28, 24), False, han
    )
    handles_face.draw(image, (WIDTH / 2, 332), handles, fill=_MUTED, anchor="mm")

    post_face = face(30, False, han)
    sample = post_face.drawable(sample or "").strip()
    if sample:
        rtl = post_face.is_rtl(sample)
        lines = _wrap(sample, post_face, WIDTH - 2 * 90 - 64, 4, rtl)
        box = (90, 372, WIDTH - 90, 372 + 48 + 40 * len(lines))
        draw.rounded_rectangle(box, radius=22, fill=_BOX)
        y = box[1] + 24
        for line in lines:
            if rtl:  # right-to-left posts start at the box's right
                post_face.draw(image, (box[2] - 32, y), line, fill=_INK, anchor="ra", rtl=True)
            else:
                post_face.draw(image, (box[0] + 32, y), line, fill=_INK, anchor="la", rtl=False)
            y += 40
    footer = face(20, False, han)
    footer.draw(
        image, (WIDTH / 2, HEIGHT - 24), "made with huggingtweets", fill=_MUTED, anchor="mm"
    )
    return image
