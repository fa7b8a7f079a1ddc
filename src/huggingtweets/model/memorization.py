"""The memorization guard: does a generated post copy a training post?

A sample is flagged when it reproduces a training post verbatim, or shares a run of
``n`` or more words with one. Words are counted as the short-post rule counts them
(``textrules``): in scripts written without spaces, two Chinese or Japanese characters
make a word, and four Thai, Lao, Khmer, Myanmar or Tibetan code points. The guard
travels with the model folder without the training texts in clear: it stores only keyed
64-bit hashes (BLAKE2b) of each post's normalized text and of its runs of ``n`` words,
in ``memorization_guard.safetensors``.

What it does not protect: the key is stored beside the hashes, in the same file. It has
to be: whoever samples the model (``generate OWNER/NAME`` from the Hub) must hash the
samples the same way, and any guard that can tell "this sample is a training post" can
tell it of any sentence. So whoever holds the file can test whether a sentence they can
guess was a training post (a membership test), though not read the posts out of it. The
key only makes each model's hashes its own (no table computed once serves every model).
The card says so (templates/model_card.md.j2); a model published without the file is
sampled unchecked.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.runs import atomic_write
from huggingtweets.core.textrules import (
    CHARS_PER_WORD_HAN_KANA,
    CHARS_PER_WORD_SOUTHEAST_ASIAN,
    HAN_KANA,
    SOUTHEAST_ASIAN,
)

GUARD_FILE = "memorization_guard.safetensors"
DEFAULT_NGRAM = 8
# "2": a run of n words counts Han/Kana and Southeast Asian characters as fractions of a
# word ("1" counted each character as a word); a guard of another version is refused.
FORMAT_VERSION = "2"

# A token is a word, or a single character of a script written without spaces (so that
# a run of Japanese or Thai is compared character by character, not as one giant word).
_TOKEN_RE = re.compile(f"[{HAN_KANA}{SOUTHEAST_ASIAN}]|[^\\W_{HAN_KANA}{SOUTHEAST_ASIAN}]+")
_HAN_KANA_RE = re.compile(f"[{HAN_KANA}]")
_SOUTHEAST_ASIAN_RE = re.compile(f"[{SOUTHEAST_ASIAN}]")
# Token weights in integer units, UNITS_PER_WORD to a word: a word is UNITS_PER_WORD, a
# Han/Kana character half of it, a Southeast Asian code point a quarter.
UNITS_PER_WORD = math.lcm(CHARS_PER_WORD_HAN_KANA, CHARS_PER_WORD_SOUTHEAST_ASIAN)
_HAN_KANA_UNITS = UNITS_PER_WORD // CHARS_PER_WORD_HAN_KANA
_SOUTHEAST_ASIAN_UNITS = UNITS_PER_WORD // CHARS_PER_WORD_SOUTHEAST_ASIAN


def tokens(text: str) -> list[str]:
    """Case-folded words without punctuation: "Hello, World!" → ["hello", "world"]."""
    return _TOKEN_RE.findall(text.casefold())


def weight(token: str) -> int:
    """A token's share of a word, in units (``UNITS_PER_WORD`` to a word)."""
    if token.isascii():  # most tokens: no regular expression to run
        return UNITS_PER_WORD
    if _HAN_KANA_RE.match(token):
        return _HAN_KANA_UNITS
    if _SOUTHEAST_ASIAN_RE.match(token):
        return _SOUTHEAST_ASIAN_UNITS
    return UNITS_PER_WORD


@dataclass(frozen=True)
class CopyMatch:
    kind: str  # "verbatim" or "ngram"
    # Length of the longest run shared with a training post (a lower bound), in words as
    # the short-post rule counts them.
    words: int

    def describe(self) -> str:
        if self.kind == "verbatim":
            return "reproduces a training post verbatim"
        return f"shares a run of {self.words}+ words with a training post"


class MemorizationGuard:
    def __init__(self, posts: np.ndarray, ngrams: np.ndarray, n: int, key: bytes) -> None:
        self.posts = np.unique(posts)
        self.ngrams = np.unique(ngrams)
        self.n = n
        self.key = key

    def _hash(self, items: Iterable[str]) -> np.ndarray:
        key = self.key
        return np.fromiter(
            (
                int.from_bytes(
                    hashlib.blake2b(s.encode("utf-8"), digest_size=8, key=key).digest(), "little"
                )
                for s in items
            ),
            dtype=np.uint64,
        )

    def _spans(self, words: list[str], weights: list[int]) -> list[tuple[int, int]]:
        """From each starting token, the shortest run ``words[start:end]`` of ``n`` words
        or more: n tokens of English, 2n characters of Japanese. A start too near the end
        to reach n words has none, so ``spans[i]`` starts at token i."""
        need = self.n * UNITS_PER_WORD
        spans, end, total = [], 0, 0  # total: the weight of words[start:end]
        for start in range(len(words)):
            while end < len(words) and total < need:
                total += weights[end]
                end += 1
            if total < need:
                break
            spans.append((start, end))
            total -= weights[start]
        return spans

    def _ngram_strings(self, words: list[str], spans: list[tuple[int, int]]) -> list[str]:
        return [" ".join(words[start:end]) for start, end in spans]

    @classmethod
    def build(cls, texts: Iterable[str], n: int = DEFAULT_NGRAM) -> MemorizationGuard:
        if n < 1:
            raise ValueError(f"the run length must be 1 word or more, not {n}")
        guard = cls(np.empty(0, np.uint64), np.empty(0, np.uint64), n, secrets.token_bytes(16))
        post_keys, grams = [], []
        for text in texts:
            words = tokens(text)
            if not words:
                continue
            post_keys.append(" ".join(words))
            grams.extend(guard._ngram_strings(words, guard._spans(words, list(map(weight, words)))))
        return cls(guard._hash(post_keys), guard._hash(grams), n, guard.key)

    def check(self, text: str) -> CopyMatch | None:
        words = tokens(text)
        if not words:
            return None
        weights = list(map(weight, words))
        if np.isin(self._hash([" ".join(words)]), self.posts).any():
            return CopyMatch("verbatim", max(1, sum(weights) // UNITS_PER_WORD))
        spans = self._spans(words, weights)
        hits = np.isin(self._hash(self._ngram_strings(words, spans)), self.ngrams)
        if not hits.any():
            return None
        # The longest stretch covered by consecutive matching runs → shared words (a lower
        # bound: the runs may come from different posts).
        offsets = [0, *itertools.accumulate(weights)]  # offsets[i]: weight of words[:i]
        longest, first = 0, None
        for i, hit in enumerate(hits):
            if not hit:
                first = None
                continue
            first = i if first is None else first
            longest = max(longest, offsets[spans[i][1]] - offsets[spans[first][0]])
        return CopyMatch("ngram", longest // UNITS_PER_WORD)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / GUARD_FILE
        data = save(
            {"posts": self.posts, "ngrams": self.ngrams},
            metadata={"n": str(self.n), "key": self.key.hex(), "version": FORMAT_VERSION},
        )
        atomic_write(path, data)
        return path

    @classmethod
    def load(cls, model_dir: Path) -> MemorizationGuard | None:
        """The guard saved beside a model, or None when the folder has none."""
        path = Path(model_dir) / GUARD_FILE
        if not path.exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(
                    f"format version {meta.get('version')!r}, this huggingtweets reads "
                    f"{FORMAT_VERSION!r}"
                )
            n = int(meta["n"])
            if n < 1:
                raise ValueError(f"a run length of {n} words")
            key = bytes.fromhex(meta["key"])
            if not 0 < len(key) <= hashlib.blake2b.MAX_KEY_SIZE:
                raise ValueError(f"a key of {len(key)} bytes")
            arrays = load_file(str(path))
            for name in ("posts", "ngrams"):
                if arrays[name].dtype != np.uint64 or arrays[name].ndim != 1:
                    raise ValueError(f"{name} are not a list of 64-bit hashes")
            return cls(arrays["posts"], arrays["ngrams"], n, key)
        except (SafetensorError, KeyError, ValueError) as exc:
            raise HuggingtweetsError(
                f"{path} is damaged or of another version ({exc}); train again, or delete it "
                "to generate without the memorization check"
            ) from None


def build_guard(texts: Iterable[str], model_dir: Path, n: int = DEFAULT_NGRAM) -> Path:
    """Hash the training posts and save the guard into ``model_dir``."""
    return MemorizationGuard.build(texts, n).save(model_dir)
