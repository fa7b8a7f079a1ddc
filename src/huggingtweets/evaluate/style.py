"""Does the bot write like the account? Style statistics of two sets of posts, side by side.

Everything here is counted on the texts, never estimated by a model of ours: lengths and
their distance, how often posts carry emoji, hashtags, mentions, questions, exclamations
or a capital first letter, the language mix, word diversity (distinct-1/2), how much the
most frequent word n-grams agree, and a "real or bot?" classifier (scikit-learn) whose
cross-validated accuracy says how easily the two sets are told apart: near 50 %, they
cannot be.

Used by ``evaluate`` (real = held-out posts, bot = samples); plain lists of strings in,
plain data out, so each statistic is tested on hand-made inputs.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from huggingtweets.core.language import MIN_LETTERS
from huggingtweets.core.textrules import strip_hashtags, strip_mentions
from huggingtweets.model.memorization import tokens

CV_FOLDS = 5
# Fewer posts than this in either set and a cross-validated classifier says nothing: with
# 5 folds each test fold would hold a handful of posts, and the 95 % interval of the
# accuracy would span most of 0-100 %.
MIN_POSTS = 20
TOP_NGRAMS = 50  # the most frequent word n-grams compared
SHOWN_NGRAMS = 10  # of which the first few are kept in evaluation.json, to read
# Pictographs, dingbats, flags, keycaps' symbols: what platforms draw as emoji.
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff"
    "\U0001f1e6-\U0001f1ff\u2190-\u21ff\u2300-\u23ff\u3030\u303d\u3297\u3299]"
)
_QUESTION = ("?", "？", "¿", "؟")
_EXCLAMATION = ("!", "！", "¡")

# name → (what the card calls it, the test a post passes)
RATES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "emoji": ("posts with an emoji", lambda t: _EMOJI_RE.search(t) is not None),
    "hashtags": ("posts with a #hashtag", lambda t: strip_hashtags(t) != t),
    "mentions": ("posts with an @mention", lambda t: strip_mentions(t) != t),
    "questions": ("posts with a question mark", lambda t: any(q in t for q in _QUESTION)),
    "exclamations": (
        "posts with an exclamation mark",
        lambda t: any(e in t for e in _EXCLAMATION),
    ),
}


def capitalised(text: str) -> bool | None:
    """Whether the first letter that has a case is a capital; None for a post without one
    (Japanese, digits only), which does not count either way."""
    for char in text:
        if char.isupper():
            return True
        if char.islower():
            return False
    return None


def rate(texts: Sequence[str], test: Callable[[str], bool | None]) -> float | None:
    """The share of posts that pass ``test`` (posts it answers None for left out)."""
    answers = [a for a in map(test, texts) if a is not None]
    return sum(answers) / len(answers) if answers else None


# -- lengths --------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def _summary(values: Sequence[float]) -> dict:
    import numpy as np

    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "p10": float(np.percentile(array, 10)),
        "p90": float(np.percentile(array, 90)),
    }


def length_comparison(real: Sequence[int], bot: Sequence[int], unit: str) -> dict:
    """Two length distributions side by side and how far apart they are: the Wasserstein
    (earth mover's) distance, in ``unit``s (how far lengths must move on average to turn
    one distribution into the other), and the Kolmogorov-Smirnov statistic (0: the same
    distribution; 1: no overlap at all)."""
    from scipy.stats import ks_2samp, wasserstein_distance

    return {
        "unit": unit,
        "real": _summary(real),
        "bot": _summary(bot),
        "wasserstein": float(wasserstein_distance(real, bot)),
        "ks": float(ks_2samp(real, bot).statistic),
        # kept for the picture's histogram
        "values": {"real": list(map(int, real)), "bot": list(map(int, bot))},
    }


# -- language, diversity, n-grams -----------------------------------------------------


def post_language(text: str) -> str | None:
    """The language of one post (py3langid), None when it has too few letters to tell."""
    text = strip_hashtags(strip_mentions(text))
    if sum(c.isalpha() for c in text) < MIN_LETTERS:
        return None
    import py3langid

    return py3langid.classify(text)[0]


def language_mix(real: Sequence[str], bot: Sequence[str]) -> dict:
    """Each set's share of posts per language (of those long enough to tell), and the total
    variation distance between the two mixes (0: the same mix, 1: no language shared)."""
    mixes = []
    for texts in (real, bot):
        counts = Counter(code for code in map(post_language, texts) if code is not None)
        total = sum(counts.values())
        mixes.append({code: n / total for code, n in counts.most_common()} if total else {})
    real_mix, bot_mix = mixes
    codes = set(real_mix) | set(bot_mix)
    distance = 0.5 * sum(abs(real_mix.get(c, 0.0) - bot_mix.get(c, 0.0)) for c in codes)
    if not real_mix or not bot_mix:  # one set has no post long enough to tell
        distance = None
    return {"real": real_mix, "bot": bot_mix, "distance": distance}


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words_ = tokens(text)  # case-folded words, script-aware (as the memorization guard)
    return [tuple(words_[i : i + n]) for i in range(len(words_) - n + 1)]


def distinct(texts: Sequence[str], n: int) -> float | None:
    """distinct-n: different word n-grams / all word n-grams in the set (1: no n-gram is
    ever repeated; low: the same phrases again and again). It falls as a set grows, so
    compare sets of as many posts."""
    grams = [g for text in texts for g in ngrams(text, n)]
    return len(set(grams)) / len(grams) if grams else None


def top_ngram_overlap(real: Sequence[str], bot: Sequence[str], n: int, k: int = TOP_NGRAMS):
    """The share of the real posts' ``k`` most frequent word n-grams that are also among
    the bot's ``k`` most frequent (1: the same favourite words or phrases)."""
    tops = []
    for texts in (real, bot):
        counts = Counter(g for text in texts for g in ngrams(text, n))
        tops.append([" ".join(g) for g, _ in counts.most_common(k)])
    real_top, bot_top = tops
    overlap = len(set(real_top) & set(bot_top)) / len(real_top) if real_top else None
    return {
        "n": n,
        "k": k,
        "overlap": overlap,
        "real": real_top[:SHOWN_NGRAMS],
        "bot": bot_top[:SHOWN_NGRAMS],
    }


def balanced(real: Sequence[str], bot: Sequence[str], seed: int) -> tuple[list, list]:
    """As many posts of each set, the larger one subsampled (under ``seed``)."""
    n = min(len(real), len(bot))
    rng = random.Random(seed)
    pick = lambda texts: list(texts) if len(texts) == n else rng.sample(list(texts), n)  # noqa: E731
    return pick(real), pick(bot)


# -- real or bot? ---------------------------------------------------------------------


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound near 0 and 1, unlike ±2σ)."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def verdict(low: float, high: float) -> str:
    """What a person should read into an accuracy's interval."""
    if low <= 0.5 <= high or high < 0.5:
        return "cannot tell them apart"
    if high <= 0.65:
        return "hard to tell apart"
    if (low + high) / 2 >= 0.9:
        return "tells them apart easily"
    return "can often tell them apart"


def real_or_bot(real: Sequence[str], bot: Sequence[str], seed: int) -> dict:
    """How well a classifier tells the real posts from the bot's.

    Logistic regression on TF-IDF character 1-4-grams (within word boundaries), on as many
    posts of each set, with ``CV_FOLDS``-fold cross-validation: every post is judged by a
    classifier that never saw it. Posts of the same text share a fold, so that a bot
    sample that copies a real post is not judged by its own twin with the other label.
    The accuracy comes with its 95 % Wilson interval; near 50 % the bot is
    indistinguishable from the account, near 100 % every post gives it away.
    """
    real, bot = balanced(real, bot, seed)
    n = len(real)
    if n < MIN_POSTS:
        return {
            "posts_each": n,
            "skipped": f"too few posts to train a classifier: {n} of each, needs {MIN_POSTS}",
        }
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = real + bot
    labels = np.array([0] * n + [1] * n)
    keys = [" ".join(t.split()) for t in texts]
    shared = set(keys[:n]) & set(keys[n:])  # a text in both sets: its copies share a fold
    group_of = {key: i for i, key in enumerate(shared)}
    groups = np.array([group_of.get(key, len(shared) + i) for i, key in enumerate(keys)])
    folds = min(CV_FOLDS, len(set(groups.tolist())))
    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    predicted = cross_val_predict(classifier, texts, labels, groups=groups, cv=cv)
    correct = int((predicted == labels).sum())
    low, high = wilson_interval(correct, 2 * n)
    return {
        "posts_each": n,
        "folds": folds,
        "accuracy": correct / (2 * n),
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict(low, high),
    }


# -- all of it --------------------------------------------------------------------------


def compare(real: Sequence[str], bot: Sequence[str], seed: int) -> dict:
    """Every statistic of the real posts beside the bot's."""
    real, bot = list(real), list(bot)
    rates = {
        name: {"label": label, "real": rate(real, test), "bot": rate(bot, test)}
        for name, (label, test) in RATES.items()
    }
    rates["capitalised"] = {
        "label": "posts starting with a capital",
        "real": rate(real, capitalised),
        "bot": rate(bot, capitalised),
    }
    same_real, same_bot = balanced(real, bot, seed)  # distinct-n depends on the set's size
    return {
        "posts": {"real": len(real), "bot": len(bot)},
        "words": length_comparison([words(t) for t in real], [words(t) for t in bot], "words"),
        "characters": length_comparison(
            [len(t) for t in real], [len(t) for t in bot], "characters"
        ),
        "rates": rates,
        "languages": language_mix(real, bot),
        "distinct": {
            str(n): {"real": distinct(same_real, n), "bot": distinct(same_bot, n)} for n in (1, 2)
        },
        "top_ngrams": {str(n): top_ngram_overlap(real, bot, n) for n in (1, 2)},
        "real_or_bot": real_or_bot(real, bot, seed),
    }
