"""The memorization guard: does a generated post copy a training post?

A sample is flagged when it reproduces a training post verbatim, or shares a run of
``n`` or more words with one. The guard travels with the model folder without the
training texts in clear: it stores only keyed 64-bit hashes (BLAKE2b) of each post's
normalized text and of its word n-grams, in ``memorization_guard.safetensors``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from .errors import HuggingtweetsError
from .runs import atomic_write
from .textrules import HAN_KANA, SOUTHEAST_ASIAN

GUARD_FILE = "memorization_guard.safetensors"
DEFAULT_NGRAM = 8
FORMAT_VERSION = "1"

# A token is a word, or a single character of a script written without spaces (so that
# a run of Japanese or Thai is compared character by character, not as one giant word).
_TOKEN_RE = re.compile(f"[{HAN_KANA}{SOUTHEAST_ASIAN}]|[^\\W_{HAN_KANA}{SOUTHEAST_ASIAN}]+")


def tokens(text: str) -> list[str]:
    """Case-folded words without punctuation: "Hello, World!" → ["hello", "world"]."""
    return _TOKEN_RE.findall(text.casefold())


@dataclass(frozen=True)
class CopyMatch:
    kind: str  # "verbatim" or "ngram"
    words: int  # length of the longest run shared with a training post (lower bound)

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

    def _ngram_strings(self, words: list[str]) -> list[str]:
        n = self.n
        return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]

    @classmethod
    def build(cls, texts: Iterable[str], n: int = DEFAULT_NGRAM) -> MemorizationGuard:
        guard = cls(np.empty(0, np.uint64), np.empty(0, np.uint64), n, secrets.token_bytes(16))
        post_keys, grams = [], []
        for text in texts:
            words = tokens(text)
            if not words:
                continue
            post_keys.append(" ".join(words))
            grams.extend(guard._ngram_strings(words))
        return cls(guard._hash(post_keys), guard._hash(grams), n, guard.key)

    def check(self, text: str) -> CopyMatch | None:
        words = tokens(text)
        if not words:
            return None
        if np.isin(self._hash([" ".join(words)]), self.posts).any():
            return CopyMatch("verbatim", len(words))
        hits = np.isin(self._hash(self._ngram_strings(words)), self.ngrams)
        if not hits.any():
            return None
        # Longest run of consecutive matching n-grams → shared words (a lower bound: the
        # n-grams may come from different posts).
        longest = run = 0
        for hit in hits:
            run = run + 1 if hit else 0
            longest = max(longest, run)
        return CopyMatch("ngram", longest + self.n - 1)

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
                raise ValueError(f"format version {meta.get('version')!r}")
            arrays = load_file(str(path))
            return cls(
                arrays["posts"], arrays["ngrams"], int(meta["n"]), bytes.fromhex(meta["key"])
            )
        except (SafetensorError, KeyError, ValueError) as exc:
            raise HuggingtweetsError(
                f"{path} is damaged or of another version ({exc}); train again, or delete it "
                "to generate without the memorization check"
            ) from None


def build_guard(texts: Iterable[str], model_dir: Path, n: int = DEFAULT_NGRAM) -> Path:
    """Hash the training posts and save the guard into ``model_dir``."""
    return MemorizationGuard.build(texts, n).save(model_dir)
