"""URL removal and whitespace, post by post exactly as the original huggingtweets cleaned.

The original did not remove "http:/https: up to the next whitespace": for each prefix it
applied five substitutions in turn, so a URL glued to the word before it takes the
following space, a bare "http:" stays, and with line breaks kept a URL alone on its line
takes its line break. ``original_clean`` below states that rule on its own, without our
code, and the properties compare our cleaning with it on generated posts.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from huggingtweets.core.textrules import clean_and_count, clean_text, count_words


def original_clean(text: str, allow_new_lines: bool = False) -> str:
    """The original's clean_tweet, stated from its rule: for "http:", then "https:",
    remove (1) a space and the URL, (2) the URL and a space, (3) a line break, the URL and
    a space, (4) a line break and the URL, (5) the URL, where the URL is the prefix and one
    or more non-whitespace characters; then runs of spaces become one space; then, unless
    line breaks are allowed, words are joined by single spaces; then the ends are trimmed."""
    for prefix in ("http:", "https:"):
        url = prefix + r"\S+"
        for pattern in (" " + url, url + " ", "\n" + url + " ", "\n" + url, url):
            text = re.sub(pattern, "", text)
    text = re.sub(" +", " ", text)
    if not allow_new_lines:
        text = " ".join(text.split())
    return text.strip()


# Pieces joined with nothing between them, so URLs end up glued to punctuation and words
# on either side, next to bare prefixes, line breaks, tabs and runs of spaces.
PIECES = [
    "word",
    "book",
    "ecoscore",
    "@bob",
    "#tag",
    "xhttpy",
    "é",
    "🙂",
    "(",
    ")",
    '"',
    ".",
    ":",
    "https://t.co/8s0yBTfou1",
    "http://x.y/z?q=1",
    "https://web.archive.org/web/2020/http://example.com",
    "http://a/https://b",
    "http:",
    "https:",
    "http:/",
    "HTTPS://UPPER",
    "htt",
    "p:",
    "ps:",
    "s",
    " ",
    " ",
    " ",
    "  ",
    "   ",
    "\n",
    "\n",
    "\n\n",
    " \n ",
    "\r\n",
    "\t",
    "\u00a0",  # no-break space: whitespace to \S and to str.split alike
]
pieced_posts = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)
# Words and URLs between separators, dense in URLs: runs of URLs separated by single
# spaces, after a line break or a tab, glued ("") or not.
WORDS = ["word", "(", "x)", "http:", "https:", "http://a/b", "https://t.co/x", "https://c"]
SEPARATORS = ["", " ", " ", " ", "  ", "\n", "\n", "\t", " \n", "\n "]
worded_posts = st.lists(
    st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(WORDS)).map("".join), max_size=10
).map("".join)
# Free text over a small alphabet reaches the odd joins the pieces may miss.
free_posts = st.text(alphabet="htps:/x( \n\t", max_size=40)
posts = st.one_of(pieced_posts, worded_posts, free_posts)


def assert_cleaned_as_the_original(text: str, allow_newlines: bool) -> None:
    expected = original_clean(text, allow_new_lines=allow_newlines)
    assert clean_text(text, allow_newlines) == expected
    cleaned, words = clean_and_count(text, allow_newlines)
    assert cleaned == expected
    assert words == count_words(expected)  # "short" is judged on the cleaned text


@settings(max_examples=1500)
@given(posts)
@example("ecoscore (https://t.co/x) of these")
@example("a\thttp://x http://y\tb")
@example("foohttp://x https://y bar")
@example("htthttp://a ps://b c")
def test_cleaning_is_the_originals_with_words_only(text):
    assert_cleaned_as_the_original(text, allow_newlines=False)


@settings(max_examples=1500)
@given(posts)
@example("\nhttp://x http://y\tb")
@example("\nhttp://x  https://y\tb")
@example("\nhttp://a/b\n \n")
@example("  http://x\n\t")
def test_cleaning_is_the_originals_with_line_breaks_allowed(text):
    assert_cleaned_as_the_original(text, allow_newlines=True)


@pytest.mark.parametrize("allow_newlines", [False, True])
def test_a_url_glued_to_the_word_before_it_takes_the_following_space(allow_newlines):
    clean = clean_text("ecoscore (https://t.co/x) of these", allow_newlines)
    assert clean == "ecoscore (of these"
    clean = clean_text("said:https://t.co/x and more", allow_newlines)
    assert clean == "said:and more"
    # Glued at the end, or followed by a line break: nothing else goes.
    assert clean_text("the end (https://t.co/x)", allow_newlines) == "the end ("
    assert clean_text("see (https://t.co/x)\nnext", allow_newlines) == (
        "see (\nnext" if allow_newlines else "see ( next"
    )


@pytest.mark.parametrize("allow_newlines", [False, True])
def test_a_bare_prefix_with_nothing_after_it_is_kept(allow_newlines):
    assert clean_text("see http: and https: here", allow_newlines) == "see http: and https: here"
    assert clean_text("https:", allow_newlines) == "https:"
    assert clean_text("ends with http:", allow_newlines) == "ends with http:"
    assert clean_and_count("one two https:") == ("one two https:", 2)


def test_with_line_breaks_allowed_a_url_alone_on_its_line_takes_its_line_break():
    assert clean_text("top line\nhttps://t.co/x\nbottom line", allow_newlines=True) == (
        "top line\nbottom line"
    )
    # Followed by a space, the URL takes that space instead, and its line break stays.
    assert clean_text("top line\nhttps://t.co/x \nbottom", allow_newlines=True) == (
        "top line\n\nbottom"
    )
    # A line of URLs separated by single spaces goes as a whole, with its line break.
    assert clean_text("top\nhttp://a https://b\tend", allow_newlines=True) == "top\tend"


def test_with_line_breaks_allowed_only_runs_of_spaces_collapse():
    text = "one  two\t\tthree \n\n\n  four\n"
    assert clean_text(text, allow_newlines=True) == "one two\t\tthree \n\n\n four"
    assert clean_text(text) == "one two three four"
