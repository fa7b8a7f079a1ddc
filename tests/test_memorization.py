"""The memorization guard on its own: what it flags, what it stores, a damaged file."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.memorization import GUARD_FILE, CopyMatch, MemorizationGuard, build_guard

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


def test_words_of_japanese_are_counted_as_the_short_post_rule_counts_them(tmp_path):
    # Each kanji or kana was one "word": this 14-character set phrase (7 words by the
    # short-post rule) was a 14-word copy of any post that thanked someone.
    build_guard(["先日は本当にありがとうございました。また近いうちにお会いしましょう"], tmp_path)
    guard = MemorizationGuard.load(tmp_path)
    assert guard.check("皆さん、本当にありがとうございました！") is None
    # 16 characters shared (8 words): a copy, and its length said in words.
    match = guard.check("昨日は本当にありがとうございました")
    assert (match.kind, match.words) == ("ngram", 8)
    match = guard.check("あれ、日は本当にありがとうございました。また近いうちに")  # 23 shared
    assert (match.kind, match.words) == ("ngram", 11)
    assert guard.check("先日は本当にありがとうございました。また近いうちにお会いしましょう") == (
        CopyMatch("verbatim", 16)
    )


def test_english_runs_are_counted_word_by_word_as_before(tmp_path):
    build_guard([" ".join(f"w{i}" for i in range(20))], tmp_path)
    guard = MemorizationGuard.load(tmp_path)
    assert guard.check("x " + " ".join(f"w{i}" for i in range(3, 10)) + " y") is None  # 7
    assert guard.check("x " + " ".join(f"w{i}" for i in range(3, 11)) + " y") == (
        CopyMatch("ngram", 8)
    )
    assert guard.check(" ".join(f"w{i}" for i in range(19))).words == 19


def test_a_guard_of_the_previous_format_is_refused(tmp_path):
    # Version "1" hashed runs of 8 characters of Japanese: its hashes mean something else.
    data = save(
        {"posts": np.zeros(1, np.uint64), "ngrams": np.zeros(1, np.uint64)},
        metadata={"n": "8", "key": "00" * 16, "version": "1"},
    )
    (tmp_path / GUARD_FILE).write_bytes(data)
    with pytest.raises(HuggingtweetsError, match=r"of another version.*format version '1'"):
        MemorizationGuard.load(tmp_path)


@pytest.mark.parametrize(
    ("metadata", "arrays", "why"),
    [
        ({"key": "00" * 100}, None, "a key of 100 bytes"),  # blake2b would fail at check time
        ({"key": ""}, None, "a key of 0 bytes"),
        ({"key": "zz"}, None, "non-hexadecimal"),
        ({"n": "0"}, None, "a run length of 0 words"),
        ({}, {"posts": np.zeros(1, np.float64)}, "posts are not a list of 64-bit hashes"),
        ({}, {"ngrams": np.zeros((2, 2), np.uint64)}, "ngrams are not a list of 64-bit hashes"),
    ],
)
def test_a_guard_with_impossible_contents_is_refused_on_load(tmp_path, metadata, arrays, why):
    tensors = {"posts": np.zeros(1, np.uint64), "ngrams": np.zeros(1, np.uint64), **(arrays or {})}
    meta = {"n": "8", "key": "00" * 16, "version": "2", **metadata}
    (tmp_path / GUARD_FILE).write_bytes(save(tensors, metadata=meta))
    with pytest.raises(HuggingtweetsError, match=f"is damaged or of another version.*{why}"):
        MemorizationGuard.load(tmp_path)


def test_the_saved_guard_holds_its_key_so_anyone_can_test_membership(tmp_path):
    """What the card says: the file alone answers "was this sentence a training post?"."""
    build_guard(POSTS, tmp_path)
    guard = MemorizationGuard.load(tmp_path)  # nothing but the published file
    assert guard.check(POSTS[0]) == CopyMatch("verbatim", 12)
    assert guard.check("a sentence that was never posted by anyone at all here") is None
