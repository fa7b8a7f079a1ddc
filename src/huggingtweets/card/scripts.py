"""Characters as the pictures draw them: grapheme clusters, emoji, which fonts a script
needs, the bidirectional order of a line, and Arabic joining where Pillow has no raqm.

Pillow with raqm shapes each run of one font itself (HarfBuzz); the order of runs of
different fonts on a line, and, without raqm, right-to-left reversal and Arabic
presentation forms, are this module's (``fonts.Face`` draws with it). The bidirectional
order and the joining are checked against python-bidi and arabic-reshaper in the tests.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

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
COMPLEX_SCRIPTS = (range(0x0900, 0x10A0), range(0x1780, 0x1800))
MIRRORED = dict(zip("()[]{}<>«»‹›", ")(][}{><»«›‹", strict=True))
# Characters that are only in Traditional Chinese (their Simplified forms differ).
_TRADITIONAL = set(
    "們這個說會來國為時對學後過還點開關與發經見現東車長門問間語讀聽電話買賣讓從應實愛報"
    "雲飛體題頭麼動歡樂氣樣幾樓號覺認識謝請邊遠錢鐘風"
)


def ignorable(ch: str) -> bool:
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


def font_kind(ch: str) -> str:
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


def script_name(ch: str) -> str:
    kind = font_kind(ch)
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


# -- bidirectional text ----------------------------------------------------------------


def bidi_class(cluster: str) -> str:
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
    classes = [bidi_class(c) for c in items]
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
