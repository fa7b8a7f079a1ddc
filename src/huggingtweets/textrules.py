"""The text rules of huggingtweets: cleaning a post and deciding whether it is "short".

Kept apart from ``prepare`` because the memorization guard splits text into words with
the same script ranges.
"""

from __future__ import annotations

import re

# "http:" / "https:" up to the next whitespace, as the original removed them.
_URL_RE = re.compile(r"https?:\S*")
_MENTION_RE = re.compile(r"(?<![\w@])@\w+(?:@[\w.-]+\w)?")
_HASHTAG_RE = re.compile(r"(?<![\w#&])#\w+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")

# Scripts written without spaces between words. The original counted whitespace-separated
# words, which makes almost every Japanese or Thai post "short" (one "word"). Inside a
# word, each run of these characters counts as len // CHARS_PER_WORD words (at least one
# per whitespace-separated word): about two characters a word for Chinese and Japanese,
# four code points for the Southeast Asian scripts whose vowels and tone marks are
# separate code points. Any word without such characters counts as one, so English is
# judged exactly as the original judged it.
HAN_KANA = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u31f0-\u31ff"  # Katakana extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
SOUTHEAST_ASIAN = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
)
_HAN_KANA_RE = re.compile(f"[{HAN_KANA}]")
_SOUTHEAST_ASIAN_RE = re.compile(f"[{SOUTHEAST_ASIAN}]")
CHARS_PER_WORD_HAN_KANA = 2
CHARS_PER_WORD_SOUTHEAST_ASIAN = 4
SHORT_WORDS = 3  # the original: fewer than 3 "interesting" words is a short tweet


def count_words(text: str, stop_at: int | None = None) -> int:
    """Words free of ``http``, ``@`` and ``#`` (case-insensitive), script-aware.

    With ``stop_at``, counting stops there: deciding "short" rarely needs the whole post.
    """
    return _count(text.split(), stop_at)


def _count(words: list[str], stop_at: int | None) -> int:
    count = 0
    for word in words:
        if stop_at is not None and count >= stop_at:
            break
        if "@" in word or "#" in word:
            continue
        if word.isascii():
            if "http" not in word.lower():
                count += 1
            continue
        if "http" in word.lower():
            continue
        han = len(_HAN_KANA_RE.findall(word))
        sea = len(_SOUTHEAST_ASIAN_RE.findall(word))
        count += max(1, han // CHARS_PER_WORD_HAN_KANA + sea // CHARS_PER_WORD_SOUTHEAST_ASIAN)
    return count


def is_short(text: str, min_words: int = SHORT_WORDS) -> bool:
    return count_words(text, stop_at=min_words) < min_words


def clean_text(text: str, allow_newlines: bool = False) -> str:
    """Remove URLs and collapse whitespace (keeping line breaks on request); trim."""
    if "http" in text:
        text = _URL_RE.sub("", text)
    if not allow_newlines:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.splitlines())
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip()


def clean_and_count(
    text: str, allow_newlines: bool = False, stop_at: int | None = None
) -> tuple[str, int]:
    """``clean_text(text)`` and the ``count_words`` of it: the original judged a post short
    after its URLs were removed. One split serves both (prepare runs this on every post)."""
    if allow_newlines:
        cleaned = clean_text(text, allow_newlines=True)
        return cleaned, count_words(cleaned, stop_at)
    if "http" in text:
        text = _URL_RE.sub("", text)
    words = text.split()
    return " ".join(words), _count(words, stop_at)


def strip_mentions(text: str) -> str:
    return _MENTION_RE.sub("", text) if "@" in text else text


def strip_hashtags(text: str) -> str:
    return _HASHTAG_RE.sub("", text) if "#" in text else text
