"""Does ``generate --as`` work? A classifier of accounts says whose each ``--as`` sample is.

A cyborg trained with speaker tokens (``train --speaker-tokens``) can write as one of its
accounts; this measures how often a classifier, trained on the accounts' real held-out
posts, agrees with the account a sample was written as.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from huggingtweets.evaluate.style import wilson_interval
from huggingtweets.model.speakers import MIN_ACCOUNTS

MIN_ATTRIBUTION_POSTS = 5


def attribution(
    real: Mapping[str, Sequence[str]], written: Mapping[str, Sequence[str]], seed: int
) -> dict:
    """How often a classifier of accounts, trained on their real held-out posts, gives
    each ``--as`` sample to the account it was written as.

    The same classifier as "real or bot?" (``style.real_or_bot``: logistic regression on
    TF-IDF character 1-4-grams), here with one class per account, its classes weighted so
    that the account with more held-out posts is not favoured; it never sees the samples
    it judges. Chance is 1/k for k accounts; the accuracy comes with its 95 % Wilson
    interval, and per account. ``real_accuracy``: the same classifier on the real held-out
    posts, cross-validated, the most the samples can score; with a few dozen held-out
    posts it is often near chance itself, and then the samples' figure says nothing.
    """
    handles = [h for h in written if written[h]]
    few = {h: len(real.get(h, ())) for h in handles if len(real.get(h, ())) < MIN_ATTRIBUTION_POSTS}
    if len(handles) < MIN_ACCOUNTS or few:
        why = (
            f"held-out posts of {', '.join(f'@{h} ({n})' for h, n in few.items())}: "
            f"a classifier of accounts needs at least {MIN_ATTRIBUTION_POSTS} of each"
            if few
            else "samples of fewer than 2 accounts"
        )
        return {"accounts": len(handles), "skipped": f"too few {why}"}
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = [t for h in handles for t in real[h]]
    labels = [h for h in handles for _ in real[h]]
    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced"),
    )
    folds = min(5, *(len(real[h]) for h in handles))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    on_real = cross_val_predict(classifier, texts, labels, cv=cv)
    real_right = sum(p == h for p, h in zip(on_real, labels, strict=True))
    real_low, real_high = wilson_interval(real_right, len(labels))
    classifier.fit(texts, labels)
    per_account, correct, total = {}, 0, 0
    for handle in handles:
        predicted = list(classifier.predict(list(written[handle])))
        right = sum(p == handle for p in predicted)
        low, high = wilson_interval(right, len(predicted))
        per_account[handle] = {
            "samples": len(predicted),
            "held_out": len(real[handle]),
            "accuracy": right / len(predicted),
            "ci_low": low,
            "ci_high": high,
        }
        correct, total = correct + right, total + len(predicted)
    low, high = wilson_interval(correct, total)
    chance = 1 / len(handles)
    if real_low <= chance:
        verdict = (
            "cannot judge: the classifier tells the accounts' own held-out posts apart no "
            "better than chance (more held-out posts would help)"
        )
    else:
        verdict = attribution_verdict(low, high, chance)
    return {
        "accounts": len(handles),
        "samples": total,
        "accuracy": correct / total,
        "chance": chance,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "real_accuracy": real_right / len(labels),
        "real_ci_low": real_low,
        "real_ci_high": real_high,
        "real_folds": folds,
        "per_account": per_account,
    }


def attribution_verdict(low: float, high: float, chance: float) -> str:
    """What a person should read into the accuracy's interval against chance."""
    if high < chance:
        return "worse than chance: the samples sound like the other accounts"
    if low <= chance:
        return "no better than chance: --as does not change whose voice it is"
    if (low + high) / 2 >= 0.9:
        return "each account's voice is recognised almost always"
    return "better than chance: --as mostly writes in the account's voice"
