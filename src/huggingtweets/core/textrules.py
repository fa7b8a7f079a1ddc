"""The text rules of huggingtweets: cleaning a post and deciding whether it is "short".

Kept apart from ``prepare`` because the memorization guard splits text into words with
the same script ranges.
"""

from __future__ import annotations

import re

# URLs, as the original removed them. For "http:", then "https:", five substitutions in
# this order, each removing what it matches: the URL (the prefix and one or more non-space
# characters) with the space before it; with the space after it; with the line break
# before it and the space after it; with the line break before it; alone. Then runs of
# spaces become one space. So a URL glued to the word before it takes the following
# space ("book (https://t.co/x) needs" is "book (needs"), a bare "http:" stays, and with
# line breaks kept a URL alone on its line takes its line break.
_URL_PREFIXES = ("http:", "https:")
_STEP_SHAPES = (" {}", "{} ", "\n{} ", "\n{}", "{}")  # {}: the URL
_ORIGINAL_URL_STEPS = tuple(
    (prefix, tuple(re.compile(shape.format(prefix + r"\S+")) for shape in _STEP_SHAPES))
    for prefix in _URL_PREFIXES
)
# Fast paths, exact when every "http:" / "https:" followed by a non-space starts a word
# (nothing glued before it): no removal then joins two words or uncovers a new URL, so
# the five steps amount to removing whole URL words. With line breaks kept, the
# whitespace around them matters: a run of URL words separated by single spaces goes
# with the space before it; else, unless a space follows, with the line break before
# it; else with the space after it, if any.
_URL_RE = re.compile(r"https?:\S+")
# (?!\S): a URL is never cut short to satisfy the "(?! )" that follows a run.
_URL_RUN = r"https?:\S+(?!\S)(?: https?:\S+(?!\S))*"
_URL_RUN_RE = re.compile(f" {_URL_RUN}|\n{_URL_RUN}(?! )|{_URL_RUN} ?")
_GLUED_URL_RE = re.compile(r"\Shttps?:\S")
_SPACES_RE = re.compile(" {2,}")
_MENTION_RE = re.compile(r"(?<![\w@])@\w+(?:@[\w.-]+\w)?")
_HASHTAG_RE = re.compile(r"(?<![\w#&])#\w+")

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


def _remove_urls(text: str, allow_newlines: bool) -> str:
    # Every "http" starts a word (str.count is far cheaper than a regex search; most URLs
    # follow a space) or, failing that, none of those not starting a word begins a URL: a
    # fast path is exact.
    unspaced = text.count("http") - text.count(" http")
    if (
        not unspaced
        or unspaced == text.count("\nhttp") + text.startswith("http")
        or not _GLUED_URL_RE.search(text)
    ):
        return (_URL_RUN_RE if allow_newlines else _URL_RE).sub("", text)
    for prefix, steps in _ORIGINAL_URL_STEPS:
        if prefix in text:  # tested each time: "htthttp:x ps:y" becomes "https:y"
            for step in steps:
                text = step.sub("", text)
    return text


def _collapse_spaces(text: str) -> str:
    """The original's ``ALLOW_NEW_LINES`` whitespace: runs of spaces (only) become one."""
    if "  " in text:
        text = _SPACES_RE.sub(" ", text)
    return text.strip()


def clean_text(text: str, allow_newlines: bool = False) -> str:
    """Remove URLs as the original did; collapse every whitespace run to one space, or with
    ``allow_newlines`` only runs of spaces (as the original's ``ALLOW_NEW_LINES``); trim."""
    if "http" in text:
        text = _remove_urls(text, allow_newlines)
    if allow_newlines:
        return _collapse_spaces(text)
    return " ".join(text.split())


def clean_and_count(
    text: str, allow_newlines: bool = False, stop_at: int | None = None
) -> tuple[str, int]:
    """``clean_text(text)`` and the ``count_words`` of it: the original judged a post short
    after its URLs were removed. One split serves both (prepare runs this on every post)."""
    if "http" in text:
        text = _remove_urls(text, allow_newlines)
    if allow_newlines:
        text = _collapse_spaces(text)
        return text, count_words(text, stop_at)
    words = text.split()
    return " ".join(words), _count(words, stop_at)


def strip_mentions(text: str) -> str:
    return _MENTION_RE.sub("", text) if "@" in text else text


def strip_hashtags(text: str) -> str:
    return _HASHTAG_RE.sub("", text) if "#" in text else text
