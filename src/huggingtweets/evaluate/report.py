"""What ``evaluate`` shows: its picture (``model/evaluation.png``) and the rows of the
card's "Does it sound like them?" section, both read from ``evaluation.json``."""

from __future__ import annotations

from pathlib import Path

from huggingtweets.core.runs import EVALUATION_PICTURE

REAL_COLOUR = "#1d7fc4"
BOT_COLOUR = "#d62"


def who(group: str) -> str:
    return "all posts" if group == "all" else f"@{group}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


# -- the picture -------------------------------------------------------------------------


def plot_evaluation(evaluation: dict, path: Path) -> None:
    """Four panels: real or bot? (accuracy with its interval), lengths, how often posts do
    what, perplexity before and after fine-tuning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = evaluation["groups"]
    overall = groups[0]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=100)
    fig.suptitle(
        f"Does it sound like them? {evaluation['samples']} posts by the bot vs "
        f"{evaluation['held_out']} real posts it never saw",
        fontsize=13,
        fontweight="bold",
    )
    _real_or_bot_panel(axes[0][0], groups)
    _length_panel(axes[0][1], overall)
    _rates_panel(axes[1][0], overall)
    _perplexity_panel(axes[1][1], groups)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from huggingtweets.core.runs import atomic_open

    with atomic_open(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def _real_or_bot_panel(ax, groups: list[dict]) -> None:
    labels = [who(g["group"]) for g in groups][::-1]
    scores = [g["real_or_bot"] for g in groups][::-1]
    for y, score in enumerate(scores):
        if "accuracy" not in score:
            ax.text(0.52, y, "too few held-out posts", va="center", fontsize=9, color="#666")
            continue
        accuracy = score["accuracy"]
        ax.barh(y, accuracy, color="#888", height=0.5)
        ax.errorbar(
            accuracy,
            y,
            # max(0, …): Wilson's bound at 100 % can round to just below it.
            xerr=[[max(0.0, accuracy - score["ci_low"])], [max(0.0, score["ci_high"] - accuracy)]],
            color="black",
            capsize=4,
        )
        ax.text(0.02, y, f"{accuracy:.0%}", va="center", fontsize=10, color="white", weight="bold")
    ax.axvline(0.5, color=REAL_COLOUR, linestyle="--")
    ax.text(0.5, len(scores) - 0.45, " a coin toss", color=REAL_COLOUR, fontsize=8)
    ax.axvline(1.0, color=BOT_COLOUR, linestyle="--")
    ax.text(0.99, len(scores) - 0.45, "never fooled ", color=BOT_COLOUR, fontsize=8, ha="right")
    ax.set_xlabel("50 %: it cannot tell the bot from them; 100 %: it always can", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(0, 1.05)
    ax.set_ylim(-0.6, len(scores) - 0.2)
    ax.xaxis.set_major_formatter(matplotlib_percent())
    ax.set_title("Real or bot? A classifier's accuracy (95 % interval)", fontsize=10)


def matplotlib_percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)


def _length_panel(ax, overall: dict) -> None:
    import numpy as np

    values = overall["words"]["values"]
    everything = values["real"] + values["bot"]
    top = max(1, int(np.percentile(everything, 99))) if everything else 1
    bins = np.linspace(0, top + 1, min(30, top + 1) + 1)
    for key, colour, label in (("real", REAL_COLOUR, "real"), ("bot", BOT_COLOUR, "bot")):
        data = np.clip(values[key], 0, top)
        ax.hist(data, bins=bins, density=True, histtype="step", linewidth=2, color=colour)
        ax.hist(data, bins=bins, density=True, alpha=0.15, color=colour, label=label)
    words = overall["words"]
    ax.set_title(
        f"Length in words (medians: real {words['real']['median']:g}, "
        f"bot {words['bot']['median']:g})",
        fontsize=10,
    )
    ax.set_xlabel(
        f"words per post (the two differ by {words['wasserstein']:.1f} words on average)",
        fontsize=8,
    )
    ax.set_yticks([])
    ax.legend()


def rate_rows(overall: dict) -> list[tuple[str, float | None, float | None]]:
    rows = [(r["label"], r["real"], r["bot"]) for r in overall["rates"].values()]
    for n, label in (
        ("1", "distinct words (distinct-1)"),
        ("2", "distinct word pairs (distinct-2)"),
    ):
        d = overall["distinct"][n]
        rows.append((label, d["real"], d["bot"]))
    return rows


def _rates_panel(ax, overall: dict) -> None:
    rows = rate_rows(overall)[::-1]
    ys = range(len(rows))
    real = [r[1] if r[1] is not None else 0 for r in rows]
    bot = [r[2] if r[2] is not None else 0 for r in rows]
    ax.barh([y + 0.2 for y in ys], real, height=0.4, color=REAL_COLOUR, label="real")
    ax.barh([y - 0.2 for y in ys], bot, height=0.4, color=BOT_COLOUR, label="bot")
    ax.set_yticks(list(ys), [r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(matplotlib_percent())
    ax.set_title("How often posts …", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    top = overall["top_ngrams"]["1"]
    if top["overlap"] is not None:
        ax.set_xlabel(
            f"{top['overlap']:.0%} of the real posts' {top['k']} most frequent words are "
            f"among the bot's {top['k']}",
            fontsize=8,
        )


def _perplexity_panel(ax, groups: list[dict]) -> None:
    labels = [who(g["group"]) for g in groups]
    xs = range(len(groups))
    for offset, key, colour, label in (
        (-0.2, "base", "#aaa", "base model"),
        (0.2, "fine_tuned", BOT_COLOUR, "fine-tuned"),
    ):
        values = [g["perplexity"][key] for g in groups]
        shown = [v if v is not None else 0 for v in values]
        bars = ax.bar([x + offset for x in xs], shown, width=0.4, color=colour, label=label)
        for bar, value in zip(bars, values, strict=True):
            if value is not None:
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    value,
                    f"{value:,.0f}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(list(xs), labels)
    ax.margins(y=0.15)
    ax.set_title("Perplexity on the held-out posts (lower: less surprised)", fontsize=10)
    ax.legend(fontsize=8)


# -- the card ----------------------------------------------------------------------------


def card_section(evaluation: dict, model_dir: Path) -> dict:
    """What the card's "Does it sound like them?" section shows, as text."""
    groups = evaluation["groups"]
    overall = groups[0]
    classifier = []
    for group in groups:
        score = group["real_or_bot"]
        if "accuracy" in score:
            interval = f"{score['ci_low']:.0%}–{score['ci_high']:.0%}"
            classifier.append(
                (
                    who(group["group"]),
                    _percent(score["accuracy"]),
                    interval,
                    score["verdict"],
                    score["posts_each"],
                )
            )
        else:
            classifier.append(
                (who(group["group"]), "—", "—", score["skipped"], score["posts_each"])
            )
    perplexity = [
        (
            who(g["group"]),
            _number(g["perplexity"]["base"]),
            _number(g["perplexity"]["fine_tuned"]),
        )
        for g in groups
    ]
    words, chars = overall["words"], overall["characters"]
    style = [
        (
            "Length in words: median (middle 80 %)",
            _spread(words["real"]),
            _spread(words["bot"]),
        ),
        (
            "Length in characters: median (middle 80 %)",
            _spread(chars["real"]),
            _spread(chars["bot"]),
        ),
    ]
    for label, real, bot in rate_rows(overall):
        style.append((label[0].upper() + label[1:], _percent(real), _percent(bot)))
    languages = overall["languages"]
    style.append(("Languages", _mix(languages["real"]), _mix(languages["bot"])))
    top1, top2 = overall["top_ngrams"]["1"], overall["top_ngrams"]["2"]
    return {
        "picture": (model_dir / EVALUATION_PICTURE).exists(),
        "picture_file": EVALUATION_PICTURE,
        "samples": evaluation["samples"],
        "held_out": evaluation["held_out"],
        "seed": evaluation["seed"],
        "classifier": classifier,
        "perplexity": perplexity,
        "style": style,
        "wasserstein": f"{words['wasserstein']:.1f}",
        "ks": f"{words['ks']:.2f}",
        "language_distance": None
        if languages["distance"] is None
        else f"{languages['distance']:.0%}",
        "top_words": (_percent(top1["overlap"]), top1["k"], ", ".join(top1["real"][:5])),
        "top_pairs": (_percent(top2["overlap"]), top2["k"]),
        "memorization": evaluation.get("memorization") or {"checked": False},
        "memorization_rate": _percent((evaluation.get("memorization") or {}).get("rate")),
        "speakers": speaker_section(evaluation.get("speakers")),
    }


def speaker_section(score: dict | None) -> dict | None:
    """The attribution of ``--as`` samples (a cyborg trained with speaker tokens), as text:
    the overall figure against chance, and a row per account."""
    if not isinstance(score, dict):
        return None
    if "accuracy" not in score:
        return {"skipped": score.get("skipped", "not measured"), "rows": []}
    rows = [
        (
            who(handle),
            str(row["samples"]),
            _percent(row["accuracy"]),
            f"{row['ci_low']:.0%}–{row['ci_high']:.0%}",
        )
        for handle, row in score["per_account"].items()
    ]
    return {
        "accuracy": _percent(score["accuracy"]),
        "interval": f"{score['ci_low']:.0%}–{score['ci_high']:.0%}",
        "chance": _percent(score["chance"]),
        "real_accuracy": _percent(score.get("real_accuracy")),
        "real_interval": f"{score.get('real_ci_low', 0):.0%}–{score.get('real_ci_high', 1):.0%}",
        "accounts": score["accounts"],
        "samples": score["samples"],
        "verdict": score["verdict"],
        "rows": rows,
    }


def _spread(summary: dict) -> str:
    return f"{summary['median']:g} ({summary['p10']:.0f}–{summary['p90']:.0f})"


def _mix(mix: dict, least: float = 0.05) -> str:
    """The main languages (codes) and their shares; the rarest lumped as "other" (a few
    short posts detected as an unlikely language are mostly the detector's noise)."""
    if not mix:
        return "—"
    shown = [(code, share) for code, share in mix.items() if share >= least][:3]
    other = 1.0 - sum(share for _, share in shown)
    parts = [f"{code} {share:.0%}" for code, share in shown]
    return ", ".join(parts + ([f"other {other:.0%}"] if other >= 0.005 else []))
