"""The words each platform uses for the rows of the statistics table (CLI and card)."""

from __future__ import annotations

_WORDS = {
    # platform: (a post, a repost)
    "x": ("Tweets", "Retweets"),
    "mastodon": ("Posts", "Boosts"),
    "bsky": ("Posts", "Reposts"),
}
_GENERIC = ("Posts", "Reposts")


def row_labels(platforms: set[str], min_words: object = None) -> dict[str, str]:
    """Labels for the stats keys; the platform's own words when all accounts share one.
    ``min_words``: the run's setting (stats.json's options), which its row names with its
    value: "Posts under 6 words (min_words)", not a flag that the run's user (an update's,
    a card's reader) may never have given."""
    posts, reposts = (
        _WORDS.get(next(iter(platforms)), _GENERIC) if len(platforms) == 1 else _GENERIC
    )
    noun = posts.lower()
    if isinstance(min_words, int) and not isinstance(min_words, bool) and min_words > 0:
        under = f"{posts} under {min_words} words (min_words)"
    else:  # stats.json without the setting (an older or edited one)
        under = f"{posts} under min_words"
    return {
        "downloaded": f"{posts} downloaded",
        "retweets": reposts,
        "short": f"Short {noun}",
        "private": f"Private {noun}",
        "replies": "Replies",
        "below_min_words": under,
        "duplicates": "Duplicates",
        "kept": f"{posts} kept",
    }


def stats_rows(stats: dict) -> list[tuple[str, list[int]]]:
    """(label, one value per account) in the seeds' order: downloaded, retweets, short,
    kept; further categories (private, ...) only where not zero, before "kept"."""
    accounts = stats["accounts"]
    options = stats.get("options")
    min_words = options.get("min_words") if isinstance(options, dict) else None
    labels = row_labels({a["platform"] for a in accounts}, min_words)
    keys = ["downloaded", *stats.get("categories", ["retweets", "short", "kept"])]
    rows = []
    for key in keys:
        values = [int(a.get(key, 0)) for a in accounts]
        if key in ("downloaded", "retweets", "short", "kept") or any(values):
            rows.append((labels.get(key, key.replace("_", " ").capitalize()), values))
    return rows
