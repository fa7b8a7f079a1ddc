"""Text in the pictures in any script: a font per character, right-to-left text, emoji.

Where the fonts come from (the decision of issue 13)
----------------------------------------------------
The system's fonts, found through fontconfig: ``fc-match -s`` gives the system's own
fallback order for ``sans-serif`` (with a ``lang`` hint that picks the Chinese, Japanese
or Korean shapes of Han characters), and ``fc-match -s emoji`` its colour emoji font.
DejaVu Sans, the pictures' font since the start, stays first for the scripts it has.
Nothing is shipped with the package: the Noto CJK fonts alone weigh over 100 MB. On
Debian and Ubuntu the fonts are the packages::

    apt-get install fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji fontconfig

(``fonts-noto-core``: Arabic, Hebrew, Thai, Devanagari and most other scripts;
``fonts-noto-cjk``: Chinese, Japanese, Korean; ``fonts-noto-color-emoji``: emoji). Without
fontconfig the usual font folders are searched (Linux, macOS, Windows), and matplotlib's
own DejaVu Sans (matplotlib is a dependency) is the last resort, so Latin, Greek and
Cyrillic always draw.

Each character is drawn with the first font of that order whose character map (read
with fontTools, which comes with matplotlib) has it, so never with a font's empty box
(``.notdef``). A character no font here has is left out of the picture, the account's
handle is always drawn, and :func:`missing_fonts` then returns one line that names the
package to install. The library prints nothing: the command line shows that line.

Shaping and right-to-left text
------------------------------
Pillow's wheels from PyPI carry libraqm and HarfBuzz and load FriBiDi from the system
when it is there (Debian's ``libfribidi0``): ``PIL.features.check("raqm")`` then says
True and each run of one font is shaped by HarfBuzz (Arabic joining, Devanagari
conjuncts, Thai marks, emoji sequences). The order of runs of different fonts on a line
(a Latin name beside an Arabic one) is this module's own: a small version of the Unicode
bidirectional algorithm (no explicit embeddings; paragraph direction from the first
strong character). Without raqm, right-to-left runs are reversed here and Arabic letters
take their presentation forms (joined, derived from ``unicodedata``, lam-alef ligatures
included), so Arabic and Hebrew still read right; scripts that need more shaping
(Devanagari, Thai ...) are then drawn unshaped and :func:`missing_fonts` says to install
FriBiDi. No new dependency: python-bidi and arabic-reshaper would cover Arabic only.

Colour emoji: Noto Color Emoji is a bitmap font (CBDT) with one size, 109 pixels; such a
font is drawn at its own size with ``embedded_color=True`` and scaled to the text.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

from huggingtweets.card.scripts import (
    COMPLEX_SCRIPTS,
    MIRRORED,
    arabic_join,
    bidi_levels,
    clusters,
    font_kind,
    ignorable,
    is_emoji,
    script_name,
    visual_order,
)

# The layout engine: raqm (HarfBuzz shaping) when Pillow can load it, else Pillow's basic
# one. A module attribute so that tests can draw without raqm too.
LAYOUT = ImageFont.Layout.RAQM if features.check_feature("raqm") else ImageFont.Layout.BASIC

FONT_PACKAGES = {
    "cjk": "fonts-noto-cjk",
    "emoji": "fonts-noto-color-emoji",
    "other": "fonts-noto-core",
    "shaping": "libfribidi0",
}

# -- finding fonts -------------------------------------------------------------------


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int = 0  # face in a collection (.ttc), as fontconfig and FreeType number it
    family: str = ""


_FC_FORMAT = "%{file}\t%{index}\t%{family[0]}\t%{slant}\t%{fontformat}\n"


@lru_cache(maxsize=32)
def _fc_sorted(pattern: str) -> tuple[FontFile, ...]:
    """fontconfig's fallback order for ``pattern`` (``fc-match -s``), upright fonts first;
    empty without fontconfig."""
    exe = shutil.which("fc-match")
    if exe is None:
        return ()
    try:
        result = subprocess.run(
            [exe, "-s", "--format", _FC_FORMAT, pattern],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    upright, slanted = [], []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[0] or parts[4] not in ("TrueType", "CFF"):
            continue
        try:
            entry = FontFile(parts[0], int(parts[1] or 0), parts[2])
        except ValueError:
            continue
        (upright if parts[3] in ("", "0") else slanted).append(entry)
    return tuple(upright + slanted)


def _font_dirs() -> list[Path]:
    home = Path.home()
    if sys.platform == "darwin":
        return [Path("/System/Library/Fonts"), Path("/Library/Fonts"), home / "Library/Fonts"]
    if sys.platform == "win32":
        windir = Path(os.environ.get("WINDIR", r"C:\Windows"))
        local = Path(os.environ.get("LOCALAPPDATA", home))
        return [windir / "Fonts", local / "Microsoft/Windows/Fonts"]
    return [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".local/share/fonts",
        home / ".fonts",
    ]


@lru_cache(maxsize=1)
def _scanned() -> tuple[FontFile, ...]:
    """Fonts in the usual folders, for systems without fontconfig: DejaVu and Noto Sans
    first, bold and italic faces last."""
    found: list[Path] = []
    for folder in _font_dirs():
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf", ".ttc")]

    def rank(path: Path) -> tuple:
        name = path.name.lower()
        return (
            any(s in name for s in ("italic", "oblique")),
            any(s in name for s in ("bold", "black", "light", "thin", "mono", "serif")),
            not name.startswith(("dejavusans", "notosans", "segoeui", "arial")),
            name,
        )

    entries: list[FontFile] = []
    for path in sorted(found, key=rank):
        faces = 1
        if path.suffix.lower() == ".ttc":
            try:
                from fontTools.ttLib import TTCollection

                with TTCollection(str(path), lazy=True) as collection:
                    faces = len(collection.fonts)
            except Exception:  # a broken file: skipped
                continue
        entries += [FontFile(str(path), i, path.stem) for i in range(faces)]
    return tuple(entries)


def _matplotlib_dejavu(bold: bool) -> tuple[FontFile, ...]:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data/fonts/ttf"
    names = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf") if bold else ("DejaVuSans.ttf",)
    return tuple(
        FontFile(str(folder / n), 0, "DejaVu Sans") for n in names if (folder / n).exists()
    )


@lru_cache(maxsize=32)
def chain(bold: bool = False, han: str | None = None) -> tuple[FontFile, ...]:
    """The fonts tried, in order, for each character of sans-serif text."""
    weight = "bold" if bold else "regular"
    dejavu = tuple(
        f for f in _fc_sorted(f"DejaVu Sans:weight={weight}")[:1] if f.family == "DejaVu Sans"
    )
    system = _fc_sorted(f"sans-serif:weight={weight}" + (f":lang={han}" if han else ""))
    if not system:
        system = _scanned()
    fonts: list[FontFile] = []
    for f in (*dejavu, *system, *_matplotlib_dejavu(bold)):
        if f not in fonts:
            fonts.append(f)
    return tuple(fonts)


@lru_cache(maxsize=1)
def emoji_font() -> FontFile | None:
    """The system's colour emoji font, or None."""
    candidates = _fc_sorted("emoji") or _scanned()
    for f in candidates:
        named = "emoji" in f.family.lower() or "emoji" in Path(f.path).name.lower()
        if named and (_bitmap_sizes(f) or _has_colour(f)):
            return f
    return None


_CMAPS: dict[tuple[str, int], frozenset[int]] = {}


def codepoints(font: FontFile) -> frozenset[int]:
    """The characters ``font`` has a glyph for (its character map); empty when unreadable."""
    key = (font.path, font.index)
    if key not in _CMAPS:
        try:
            from fontTools.ttLib import TTFont

            with TTFont(font.path, fontNumber=font.index & 0xFFFF, lazy=True) as tt:
                _CMAPS[key] = frozenset(tt.getBestCmap() or ())
        except Exception:  # not a font fontTools reads: never chosen
            _CMAPS[key] = frozenset()
    return _CMAPS[key]


@lru_cache(maxsize=64)
def _tables(font: FontFile) -> frozenset[str]:
    try:
        from fontTools.ttLib import TTFont

        with TTFont(font.path, fontNumber=font.index & 0xFFFF, lazy=True) as tt:
            return frozenset(tt.keys())
    except Exception:
        return frozenset()


def _has_colour(font: FontFile) -> bool:
    return bool(_tables(font) & {"CBDT", "sbix", "COLR"})


@lru_cache(maxsize=64)
def _bitmap_sizes(font: FontFile) -> tuple[int, ...]:
    """The pixel sizes of a bitmap font's strikes (CBDT, sbix); empty for outline fonts."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(font.path, fontNumber=font.index & 0xFFFF, lazy=True) as tt:
            if "CBLC" in tt:
                return tuple(sorted(s.bitmapSizeTable.ppemY for s in tt["CBLC"].strikes))
            if "sbix" in tt:
                return tuple(sorted(tt["sbix"].strikes))
    except Exception:
        pass
    return ()


@lru_cache(maxsize=256)
def _load(
    font: FontFile, size: int, layout: ImageFont.Layout
) -> tuple[ImageFont.FreeTypeFont, float]:
    """``font`` for drawing at ``size`` pixels, and the scale its drawing takes: a bitmap
    font is loaded at its own size (Noto Color Emoji: 109) and scaled."""
    strikes = _bitmap_sizes(font)
    if strikes:
        # The smallest strike at least as large as asked (sharp when scaled down).
        strike = next((s for s in strikes if s >= size), strikes[-1])
        face = ImageFont.truetype(font.path, strike, index=font.index, layout_engine=layout)
        return face, size / strike
    return ImageFont.truetype(font.path, size, index=font.index, layout_engine=layout), 1.0


# -- what could not be drawn -------------------------------------------------------------

_MISSING: dict[str, set[str]] = {}  # package -> the scripts it would have drawn


def _note_missing(kind: str, what: str) -> None:
    _MISSING.setdefault(FONT_PACKAGES[kind], set()).add(what)


def missing_fonts() -> str | None:
    """One line for the user when a picture drawn since :func:`reset_missing_fonts` left
    characters out (no font here) or drew a script unshaped (no FriBiDi), naming the
    packages to install; None when everything was drawn. The library prints nothing."""
    if not _MISSING:
        return None
    packages = sorted(_MISSING)
    fonts = sorted({w for p in packages if p != FONT_PACKAGES["shaping"] for w in _MISSING[p]})
    parts = []
    if fonts:
        parts.append(f"no font here for {', '.join(fonts)} (left out of the pictures)")
    if FONT_PACKAGES["shaping"] in _MISSING:
        unshaped = ", ".join(sorted(_MISSING[FONT_PACKAGES["shaping"]]))
        parts.append(f"{unshaped} drawn unshaped (Pillow found no FriBiDi)")
    names = " ".join(packages)
    return f"{'; '.join(parts)}: install {names} (Debian/Ubuntu: apt-get install {names})"


def reset_missing_fonts() -> None:
    _MISSING.clear()
    Face._line.cache_clear()  # laid-out lines note what they miss when laid out again


def clear_caches() -> None:
    """Forget fonts found and loaded (after installing fonts, or changing ``LAYOUT``)."""
    for cached in (_fc_sorted, _scanned, chain, emoji_font, _tables, _bitmap_sizes, _load, face):
        cached.cache_clear()
    _CMAPS.clear()
    Face._for_cluster.cache_clear()
    Face._line.cache_clear()


# -- laying out and drawing ------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Characters drawn with one font in one direction (``text`` in logical order)."""

    text: str
    font: FontFile
    level: int  # bidirectional level: odd is right to left
    emoji: bool

    @property
    def rtl(self) -> bool:
        return self.level % 2 == 1


@dataclass(frozen=True)
class _Placed:
    run: Run
    face: ImageFont.FreeTypeFont
    scale: float
    drawn: str  # what is handed to Pillow
    width: float


class Face:
    """Sans-serif text at ``size`` pixels: a fallback chain of fonts, one per character."""

    def __init__(self, size: int, bold: bool = False, han: str | None = None):
        self.size = size
        self.bold = bold
        self.han = han
        self.chain = chain(bold, han)
        if not self.chain:  # not even matplotlib's DejaVu: Pillow's own font, Latin only
            self._fallback = ImageFont.load_default(size=size)
        primary = self.chain[0] if self.chain else None
        metrics_font = _load(primary, size, LAYOUT)[0] if primary else self._fallback
        self.ascent, self.descent = metrics_font.getmetrics()

    @staticmethod
    @lru_cache(maxsize=65536)
    def _for_cluster(fonts: tuple[FontFile, ...], cluster: str, previous: FontFile | None):
        visible = [ord(c) for c in cluster if not ignorable(c)]
        if not visible:
            return previous
        if is_emoji(cluster):
            emoji = emoji_font()
            if emoji is not None and visible[0] in codepoints(emoji):
                return emoji
        if (
            previous is not None
            and unicodedata.category(cluster[0])[0] in "ZP"
            and all(cp in codepoints(previous) for cp in visible)
        ):
            return previous  # spaces and punctuation stay in the run they are in
        for font in fonts:
            if all(cp in codepoints(font) for cp in visible):
                return font
        for font in fonts:  # a letter with a mark no font has with it: the letter alone
            if visible[0] in codepoints(font):
                return font
        return None

    def runs(self, text: str, rtl: bool | None = None) -> list[Run]:
        """``text`` cut into runs (logical order); characters no font has are left out.
        ``rtl``: the paragraph's direction, when ``text`` is one line of a paragraph."""
        items = clusters(text)
        if not self.chain or not items:
            return []
        chosen: list[tuple[str, FontFile]] = []
        previous: FontFile | None = None
        for cluster in items:
            font = self._for_cluster(self.chain, cluster, previous)
            if font is None:
                _note_missing(font_kind(cluster[0]), script_name(cluster[0]))
                continue
            previous = None if font == emoji_font() else font
            chosen.append((cluster, font))
        _, levels = bidi_levels([c for c, _ in chosen], rtl)
        runs: list[Run] = []
        for (cluster, font), level in zip(chosen, levels, strict=True):
            emoji = font == emoji_font()
            if runs and runs[-1].font == font and runs[-1].level == level:
                runs[-1] = Run(runs[-1].text + cluster, font, level, emoji)
            else:
                runs.append(Run(cluster, font, level, emoji))
        return runs

    def drawable(self, text: str) -> str:
        """The characters of ``text`` that have a font here (logical order)."""
        return "".join(r.text for r in self.runs(text))

    @lru_cache(maxsize=4096)  # noqa: B019 (faces are few and live as long as the process)
    def _line(self, text: str, rtl: bool | None = None) -> tuple[_Placed, ...]:
        runs = self.runs(text, rtl)
        placed = []
        for i in visual_order([r.level for r in runs]):
            run = runs[i]
            try:
                face, scale = _load(run.font, self.size, LAYOUT)
            except OSError:  # a font FreeType cannot open after all: its characters left out
                _note_missing(font_kind(run.text[0]), script_name(run.text[0]))
                continue
            drawn, kwargs = run.text, {}
            if LAYOUT == ImageFont.Layout.RAQM:
                kwargs = {"direction": "rtl" if run.rtl else "ltr"}
            else:
                drawn = "".join(c for c in drawn if not ignorable(c))
                complex_ = [c for c in drawn if any(ord(c) in r for r in COMPLEX_SCRIPTS)]
                if complex_:
                    _note_missing("shaping", script_name(complex_[0]))
                if run.rtl:
                    parts = clusters(arabic_join(drawn, codepoints(run.font)))
                    drawn = "".join(MIRRORED.get(c, c) for c in reversed(parts))
            width = face.getlength(drawn, **kwargs) * scale if drawn else 0.0
            placed.append(_Placed(run, face, scale, drawn, width))
        return tuple(placed)

    def length(self, text: str, rtl: bool | None = None) -> float:
        if not self.chain:
            return self._fallback.getlength(text)
        return sum(p.width for p in self._line(text, rtl))

    def is_rtl(self, text: str) -> bool:
        """Whether ``text`` reads right to left (its first strong character does)."""
        return bidi_levels(clusters(text))[0] == 1

    def draw(
        self,
        image: Image.Image,
        xy: tuple[float, float],
        text: str,
        fill,
        anchor: str = "la",
        rtl: bool | None = None,
    ) -> None:
        """Draw ``text`` with ``anchor`` as Pillow's: l/m/r across, a (ascender), m
        (middle) or s (baseline) down, the line's height being the first font's."""
        x, y = xy
        width = self.length(text, rtl)
        x -= {"l": 0.0, "m": width / 2, "r": width}[anchor[0]]
        baseline = (
            y
            + {
                "a": self.ascent,
                "m": (self.ascent - self.descent) / 2,
                "s": 0,
            }[anchor[1]]
        )
        draw = ImageDraw.Draw(image)
        if not self.chain:
            draw.text((x, baseline), text, font=self._fallback, fill=fill, anchor="ls")
            return
        colour = image.mode in ("RGB", "RGBA")
        for placed in self._line(text, rtl):
            if placed.drawn:
                self._draw_run(image, draw, placed, x, baseline, fill, colour)
            x += placed.width

    @staticmethod
    def _draw_run(image, draw, placed: _Placed, x, baseline, fill, colour) -> None:
        kwargs = {}
        if LAYOUT == ImageFont.Layout.RAQM:
            kwargs["direction"] = "rtl" if placed.run.rtl else "ltr"
        embedded = placed.run.emoji and colour
        if placed.scale == 1.0:
            draw.text(
                (x, baseline),
                placed.drawn,
                font=placed.face,
                fill=fill,
                anchor="ls",
                embedded_color=embedded,
                **kwargs,
            )
            return
        # A bitmap font: drawn at its own size, then scaled to the text's.
        ascent, descent = placed.face.getmetrics()
        width = max(1, round(placed.width / placed.scale) + 2)
        big = Image.new("RGBA", (width, ascent + descent), (0, 0, 0, 0))
        ImageDraw.Draw(big).text(
            (0, ascent),
            placed.drawn,
            font=placed.face,
            fill=fill,
            anchor="ls",
            embedded_color=embedded,
            **kwargs,
        )
        size = (max(1, round(big.width * placed.scale)), max(1, round(big.height * placed.scale)))
        small = big.resize(size, Image.LANCZOS)
        at = (round(x), round(baseline - ascent * placed.scale))
        if image.mode == "RGBA" and at[0] >= 0 and at[1] >= 0:
            image.alpha_composite(small, at)
        else:
            image.paste(small, at, small)


@lru_cache(maxsize=64)
def face(size: int, bold: bool = False, han: str | None = None) -> Face:
    return Face(size, bold, han)


def fonts_for(text: str, size: int = 40, bold: bool = False, han: str | None = None):
    """Each drawn character of ``text`` with the font chosen for it (for checks)."""
    return [(ch, run.font) for run in face(size, bold, han).runs(text) for ch in run.text]


def has_font(chars: Iterable[str], bold: bool = False, han: str | None = None) -> bool:
    """Whether every character of ``chars`` would be drawn (none left out)."""
    return all(
        Face._for_cluster(chain(bold, han), c, None) is not None for c in clusters("".join(chars))
    )
