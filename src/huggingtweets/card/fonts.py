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

import regex
from PIL import Image, ImageDraw, ImageFont, features

# The layout engine: raqm (HarfBuzz shaping) when Pillow can load it, else Pillow's basic
# one. A module attribute so that tests can draw without raqm too.
LAYOUT = ImageFont.Layout.RAQM if features.check_feature("raqm") else ImageFont.Layout.BASIC

FONT_PACKAGES = {
    "cjk": "fonts-noto-cjk",
    "emoji": "fonts-noto-color-emoji",
    "other": "fonts-noto-core",
    "shaping": "libfribidi0",
}

# -- characters ----------------------------------------------------------------------

_VARIATION = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}
# Emoji_Presentation=Yes below U+1F000 (Unicode's emoji-data.txt): drawn as emoji even
# without U+FE0F. Above U+1F000 every emoji the emoji font has is drawn as one.
_BMP_EMOJI = {
    *range(0x231A, 0x231C), *range(0x23E9, 0x23ED), 0x23F0, 0x23F3, *range(0x25FD, 0x25FF),
    *range(0x2614, 0x2616), *range(0x2648, 0x2654), 0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB,
    0x26BD, 0x26BE, 0x26C4, 0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26FA,
    0x26FD, 0x2705, 0x270A, 0x270B, 0x2728, 0x274C, 0x274E, *range(0x2753, 0x2756), 0x2757,
    *range(0x2795, 0x2798), 0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55,
}  # fmt: skip
# Scripts whose runs need more than reversing and Arabic joining (matras, conjuncts,
# stacked marks): Indic scripts, Sinhala, Thai, Lao, Tibetan, Myanmar, Khmer.
_COMPLEX = (range(0x0900, 0x10A0), range(0x1780, 0x1800))
_MIRROR = dict(zip("()[]{}<>«»‹›", ")(][}{><»«›‹", strict=True))
# Characters that are only in Traditional Chinese (their Simplified forms differ).
_TRADITIONAL = set(
    "們這個說會來國為時對學後過還點開關與發經見現東車長門問間語讀聽電話買賣讓從應實愛報"
    "雲飛體題頭麼動歡樂氣樣幾樓號覺認識謝請邊遠錢鐘風"
)


def _ignorable(ch: str) -> bool:
    """Invisible format characters (joiners, variation selectors, direction marks)."""
    cp = ord(ch)
    return unicodedata.category(ch) == "Cf" or cp in _VARIATION


# Extended grapheme clusters (Unicode's UAX #29), as generate/share.py counts them.
_GRAPHEME = regex.compile(r"\X")


def clusters(text: str) -> list[str]:
    """``text`` cut where it may be cut: a letter with its marks, an emoji sequence and a
    flag stay whole. Lone format characters (direction marks ...) are dropped."""
    return [
        cluster
        for cluster in _GRAPHEME.findall(text)
        if not all(unicodedata.category(ch) == "Cf" for ch in cluster)
    ]


def is_emoji(cluster: str) -> bool:
    """Whether a cluster is drawn as an emoji (in colour where the font allows)."""
    if "\ufe0e" in cluster:  # text presentation asked for
        return False
    cp = ord(cluster[0])
    return "\ufe0f" in cluster or cp in _BMP_EMOJI or 0x1F000 <= cp < 0x1FB00


def _kind(ch: str) -> str:
    """Which package's fonts a character needs: cjk, emoji or other."""
    cp = ord(ch)
    if is_emoji(ch):
        return "emoji"
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC")):
        return "cjk"
    if 0x3000 <= cp < 0x3100 or 0xFF00 <= cp < 0xFFF0 or 0x20000 <= cp < 0x32000:
        return "cjk"
    return "other"


def _script_name(ch: str) -> str:
    kind = _kind(ch)
    if kind != "other":
        return {"cjk": "Chinese/Japanese/Korean", "emoji": "emoji"}[kind]
    word = unicodedata.name(ch, "symbols").split()[0]
    return word.title() if word.isalpha() else "symbols"


def han_language(text: str, language: str | None = None) -> str:
    """The fontconfig language whose shapes Han characters take in ``text``: Japanese when
    it has kana, Korean with Hangul, else ``language`` (the posts' main language), else
    Traditional or Simplified Chinese by the characters used."""
    for ch in text:
        name = unicodedata.name(ch, "")
        if name.startswith(("HIRAGANA", "KATAKANA")):
            return "ja"
        if name.startswith("HANGUL"):
            return "ko"
    primary = (language or "").lower().replace("_", "-")
    if primary.split("-")[0] in ("ja", "ko"):
        return primary.split("-")[0]
    if any(tag in primary for tag in ("-tw", "-hk", "-mo", "-hant")):
        return "zh-tw"
    return "zh-tw" if any(ch in _TRADITIONAL for ch in text) else "zh-cn"


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


# -- bidirectional text ----------------------------------------------------------------


def _bidi_class(cluster: str) -> str:
    """L, R, EN (numbers) or N (neutral) for a cluster, by its first character."""
    kind = unicodedata.bidirectional(cluster[0])
    if kind == "L":
        return "L"
    if kind in ("R", "AL"):
        return "R"
    if kind in ("EN", "AN"):
        return "EN"
    return "N"


def bidi_levels(items: list[str], rtl: bool | None = None) -> tuple[int, list[int]]:
    """The paragraph level (0 left to right, 1 right to left: ``rtl``, else that of the
    first strong character) and each cluster's level: the Unicode bidirectional algorithm
    without explicit embeddings (rules P2-P3, W7, N1-N2, I1-I2, L1 for trailing spaces)."""
    classes = [_bidi_class(c) for c in items]
    para = next((0 if c == "L" else 1 for c in classes if c in ("L", "R")), 0)
    if rtl is not None:
        para = int(rtl)
    # W7: numbers after a left-to-right strong character (or at the start of a
    # left-to-right paragraph) are left to right.
    last = "L" if para == 0 else "R"
    for i, c in enumerate(classes):
        if c in ("L", "R"):
            last = c
        elif c == "EN" and last == "L":
            classes[i] = "L"
    # N1-N2: neutrals between two characters of one direction take it (numbers count as
    # right to left), others the paragraph's.
    strong = ["R" if c == "EN" else c for c in classes]
    edge = "L" if para == 0 else "R"
    i = 0
    while i < len(classes):
        if classes[i] != "N":
            i += 1
            continue
        j = i
        while j < len(classes) and classes[j] == "N":
            j += 1
        before = strong[i - 1] if i > 0 else edge
        after = strong[j] if j < len(classes) else edge
        for k in range(i, j):
            classes[k] = before if before == after else edge
        i = j
    # I1-I2
    if para == 0:
        levels = [{"L": 0, "R": 1, "EN": 2}[c] for c in classes]
    else:
        levels = [{"L": 2, "R": 1, "EN": 2}[c] for c in classes]
    # L1: trailing white space at the paragraph's level.
    k = len(items)
    while k > 0 and items[k - 1].isspace():
        k -= 1
        levels[k] = para
    return para, levels


def visual_order(levels: list[int]) -> list[int]:
    """Rule L2: the indices of items of these levels in the order they are drawn."""
    order = list(range(len(levels)))
    odd = [lv for lv in levels if lv % 2]
    if not odd:
        return order
    for level in range(max(levels), min(odd) - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] < level:
                i += 1
                continue
            j = i
            while j < len(order) and levels[order[j]] >= level:
                j += 1
            order[i:j] = order[i:j][::-1]
            i = j
    return order


# -- Arabic joining without raqm -------------------------------------------------------


@lru_cache(maxsize=1)
def _arabic_forms() -> dict[str, dict[str, str]]:
    """Arabic letters (and lam-alef pairs) -> their presentation forms, from Unicode's
    decompositions of the Arabic Presentation Forms blocks."""
    forms: dict[str, dict[str, str]] = {}
    for cp in (*range(0xFB50, 0xFE00), *range(0xFE70, 0xFF00)):
        tag, *rest = unicodedata.decomposition(chr(cp)).split() or [""]
        if tag not in ("<isolated>", "<final>", "<initial>", "<medial>"):
            continue
        base = "".join(chr(int(h, 16)) for h in rest)
        if len(base) == 1 or (base[0] == "\u0644" and base[1] in "\u0622\u0623\u0625\u0627"):
            forms.setdefault(base, {})[tag.strip("<>")] = chr(cp)
    return forms


def arabic_join(text: str, has: frozenset[int] | None = None) -> str:
    """``text`` (logical order) with Arabic letters in their joined presentation forms;
    only forms in ``has`` (the font's characters) when given, else the letter stays."""
    forms = _arabic_forms()
    if has is not None:
        forms = {
            base: {form: ch for form, ch in shapes.items() if ord(ch) in has}
            for base, shapes in forms.items()
        }

    def joins_both(ch: str) -> bool:  # dual-joining: has an initial or medial form
        f = forms.get(ch, {})
        return "initial" in f or "medial" in f or ch == "\u0640"

    def joins_right(ch: str) -> bool:  # joins the letter before it: has a final form
        return "final" in forms.get(ch, {}) or ch == "\u0640"

    # Letters with their positions; marks are transparent to joining.
    letters = [(i, ch) for i, ch in enumerate(text) if unicodedata.category(ch) not in ("Mn", "Me")]
    out = list(text)
    k = 0
    while k < len(letters):
        i, ch = letters[k]
        prev = letters[k - 1][1] if k > 0 else ""
        nxt_i, nxt = letters[k + 1] if k + 1 < len(letters) else (-1, "")
        joined_before = joins_both(prev) and joins_right(ch)
        if nxt and forms.get(ch + nxt):  # lam-alef: one ligature
            ligature = forms[ch + nxt]
            form = "final" if joined_before else "isolated"
            out[i] = ligature.get(form) or next(iter(ligature.values()))
            out[nxt_i] = ""
            k += 2
            continue
        joined_after = joins_both(ch) and joins_right(nxt)
        form = {
            (True, True): "medial",
            (True, False): "final",
            (False, True): "initial",
            (False, False): "isolated",
        }[(joined_before, joined_after)]
        out[i] = forms.get(ch, {}).get(form, ch)
        k += 1
    return "".join(out)


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
        visible = [ord(c) for c in cluster if not _ignorable(c)]
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
                _note_missing(_kind(cluster[0]), _script_name(cluster[0]))
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
                _note_missing(_kind(run.text[0]), _script_name(run.text[0]))
                continue
            drawn, kwargs = run.text, {}
            if LAYOUT == ImageFont.Layout.RAQM:
                kwargs = {"direction": "rtl" if run.rtl else "ltr"}
            else:
                drawn = "".join(c for c in drawn if not _ignorable(c))
                complex_ = [c for c in drawn if any(ord(c) in r for r in _COMPLEX)]
                if complex_:
                    _note_missing("shaping", _script_name(complex_[0]))
                if run.rtl:
                    parts = clusters(arabic_join(drawn, codepoints(run.font)))
                    drawn = "".join(_MIRROR.get(c, c) for c in reversed(parts))
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
