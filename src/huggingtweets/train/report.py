"""What a training run reports: the per-epoch history, the loss curve, metrics.json."""

from __future__ import annotations

import math
from pathlib import Path


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def epoch_history(log_history: list[dict], eval_before: float) -> list[dict]:
    """Per epoch: the eval loss, and the mean of the train losses logged during it."""
    history = [{"epoch": 0.0, "eval_loss": eval_before, "train_loss": None}]
    train_losses: list[tuple[float, float]] = [
        (entry["epoch"], entry["loss"]) for entry in log_history if "loss" in entry
    ]
    previous = 0.0
    for entry in log_history:
        if "eval_loss" not in entry:
            continue
        epoch = float(entry["epoch"])
        window = [loss for e, loss in train_losses if previous < e <= epoch + 1e-9]
        history.append(
            {
                "epoch": round(epoch, 4),
                "eval_loss": float(entry["eval_loss"]),
                "train_loss": sum(window) / len(window) if window else None,
            }
        )
        previous = epoch
    return history


def plot_loss_curve(history: list[dict], log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    steps = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e and "epoch" in e]
    if steps:
        ax.plot(*zip(*steps, strict=True), label="train loss", color="#9ab", linewidth=1)
    ax.plot(
        [h["epoch"] for h in history],
        [h["eval_loss"] for h in history],
        "o-",
        label="validation loss",
        color="#d62",
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
