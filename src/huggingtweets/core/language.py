"""The main language of an account's posts, for the card's ``language`` (ISO 639 code).

The platforms tag posts themselves (X, Mastodon, Bluesky); those tags are preferred when
most posts carry one. Files (text, CSV, JSONL) carry none, so the language is then
detected from the posts with py3langid (langid.py's model, bundled: works offline).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import islice

from huggingtweets.core.textrules import strip_hashtags, strip_mentions

# Detection looks at this many posts at most: a few hundred already give a clear
# majority, and a 3,200-post account stays as fast as a 50-post one.
SAMPLE_POSTS = 500
# Shorter posts ("lol", "ok!", "👍") say nothing reliable about their language.
MIN_LETTERS = 10

# X's codes for "no language" / "only a URL, a hashtag, an emoji...", and legacy codes.
_NO_LANGUAGE = {"und", "zxx", "mul", "mis"}
_LEGACY_LANGUAGE = {"in": "id", "iw": "he", "ji": "yi"}
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")


def tag_code(tag: object) -> str | None:
    """The ISO 639 code of a platform's language tag ("pt-BR" → "pt"), or None when the
    tag names no language (X's "und", "zxx", "qme" ...)."""
    primary = str(tag).lower().replace("_", "-").split("-")[0]
    primary = _LEGACY_LANGUAGE.get(primary, primary)
    if not _LANGUAGE_RE.fullmatch(primary) or primary in _NO_LANGUAGE:
        return None
    if len(primary) == 3 and primary.startswith("q"):  # X's qme, qht, qam ...
        return None
    return primary


def tagged_languages(stats: dict) -> Counter:
    """Posts per language, as the platforms tagged the kept posts (``stats.json``)."""
    counts: Counter = Counter()
    for account in stats["accounts"]:
        for tag, n in (account.get("languages") or {}).items():
            code = tag_code(tag)
            if code is not None:
                counts[code] += int(n)
    return counts


def detect_language(texts: Iterable[str], limit: int = SAMPLE_POSTS) -> str | None:
    """The language most of the first ``limit`` posts are written in, or None when none
    of them has enough letters to tell. One vote per post, as the platforms' tags count."""
    votes: Counter = Counter()
    classify = None
    for text in islice(texts, limit):
        text = strip_hashtags(strip_mentions(text))  # names and tags are no language
        if sum(c.isalpha() for c in text) < MIN_LETTERS:
            continue
        if classify is None:  # the model loads in about half a second: only when needed
            import py3langid

            classify = py3langid.classify
        votes[classify(text)[0]] += 1
    return votes.most_common(1)[0][0] if votes else None


def main_language(stats: dict, texts: Iterable[str] = ()) -> str | None:
    """The posts' main language: the platforms' tags when most kept posts carry one, else
    detected from ``texts`` (a sample of the kept posts), else the tags there are."""
    tagged = tagged_languages(stats)
    kept = sum(int(account.get("kept", 0)) for account in stats["accounts"])
    if tagged and 2 * sum(tagged.values()) > kept:
        return tagged.most_common(1)[0][0]
    detected = detect_language(texts)
    if detected is not None:
        return detected
    return tagged.most_common(1)[0][0] if tagged else None


# "My dream is", the original's prompt, as a post in each language would start it. Only
# languages where the phrase is natural; any other language keeps the English prompt.
ENGLISH_PROMPT = "My dream is"
_PROMPTS = {
    "ja": "私の夢は",
    "zh": "我的梦想是",
    "zh-hant": "我的夢想是",
    "ko": "내 꿈은",
    "de": "Mein Traum ist",
    "fr": "Mon rêve est",
    "es": "Mi sueño es",
    "it": "Il mio sogno è",
    "pt": "Meu sonho é",
    "pt-pt": "O meu sonho é",
    "nl": "Mijn droom is",
    "sv": "Min dröm är",
    "da": "Min drøm er",
    "nb": "Min drøm er",
    "no": "Min drøm er",
    "fi": "Unelmani on",
    "pl": "Moim marzeniem jest",
    "ca": "El meu somni és",
}


def default_prompt(language: str | None) -> str:
    """The start of a post for the card's widget and samples, and generate's default:
    "My dream is" in the posts' main language (``language``: an ISO 639 code or a tag
    such as "pt-PT" or "zh-Hant"); English, and languages not listed, "My dream is"."""
    tag = (language or "").strip().lower().replace("_", "-")
    primary = tag.split("-")[0]
    if primary == "zh" and any(part in ("hant", "tw", "hk", "mo") for part in tag.split("-")):
        return _PROMPTS["zh-hant"]
    if tag in ("pt-pt", "pt-ao", "pt-mz"):
        return _PROMPTS["pt-pt"]
    return _PROMPTS.get(primary, ENGLISH_PROMPT)
