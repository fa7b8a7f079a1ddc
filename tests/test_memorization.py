"""The memorization guard on its own: what it flags, what it stores, a damaged file."""

from __future__ import annotations

import pytest

from huggingtweets.errors import HuggingtweetsError
from huggingtweets.memorization import GUARD_FILE, MemorizationGuard, build_guard

POSTS = [
    "the quick brown fox jumps over the lazy dog again and again",
    "今日は良い天気ですね、公園を散歩しました",
]


def test_flags_copies_and_runs_of_words_but_not_new_text(tmp_path):
    build_guard(POSTS, tmp_path)
    guard = MemorizationGuard.load(tmp_path)
    assert guard.check("The quick brown fox jumps over the lazy dog, again and again!").kind == (
        "verbatim"
    )
    match = guard.check("well the quick brown fox jumps over the lazy dog, said he")
    assert (match.kind, match.words) == ("ngram", 9)
    assert guard.check("今日は良い天気ですね、公園を散歩しましたよ").kind == "ngram"
    assert guard.check("a fox and a dog, nothing alike") is None
    # Only keyed hashes are stored, not the posts in clear.
    assert b"quick brown" not in (tmp_path / GUARD_FILE).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [GUARD_FILE]  # no temporary left


def test_a_damaged_guard_is_a_clear_error(tmp_path):
    assert MemorizationGuard.load(tmp_path) is None  # none saved: nothing to check against
    (tmp_path / GUARD_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(HuggingtweetsError, match="is damaged or of another version"):
        MemorizationGuard.load(tmp_path)
