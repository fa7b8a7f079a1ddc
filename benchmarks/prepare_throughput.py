"""Benchmark: read and prepare 100,000 posts, end to end (issue 2's target: ≥ 100,000 posts/s).

Times ``huggingtweets.prepare.dataset`` (read the source, write posts/, clean, split, write
dataset/) on the same 100,000 posts in four forms:

- an X data export folder: the real entries of ../shared/data/x-archive-smithjd repeated
  with fresh ids (same structure and text: about 1.4 KB of JSON a post), or synthetic
  entries when that export is absent;
- the same export as a .zip;
- a CSV file of id, created_at, text;
- our own posts JSON Lines (``prepare --out RUN`` re-preparing collected posts).

The figure is the median wall time of ``--repeat`` runs of each, also given as a ratio
to a baseline timed in the same run on the same input (each form's own, not the folder's
for all): the original huggingtweets' approach written plainly — the form read with the
standard library (``json.loads`` the whole ``tweets.js``, from the folder or through
``zipfile``; ``csv.DictReader``; ``json.loads`` a line each), then its clean and short
rules post by post, ``random.shuffle``, a 90/10 split, ``json.dumps`` a line each.

With ``--fork``, it times instead the folder export with and without the forked child that
read and cleaned half of a large export on the second core (``core/parallel.py``, switched
off by ``HUGGINGTWEETS_NO_FORK``), the two alternated in one run. The fork was to stay only
if it was at least 1.3x faster; it was slower (benchmarks/README.md) and was deleted, so
this mode measures something only on a checkout that still has it.

    python benchmarks/prepare_throughput.py [--posts 100000] [--repeat 5] [--json out.json]
    python benchmarks/prepare_throughput.py --fork [--repeat 9]
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import random
import re
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from huggingtweets import prepare, read_source

REAL_EXPORT = Path(__file__).resolve().parents[2] / "shared/data/x-archive-smithjd/data/tweets.js"
TARGET = 100_000


def template_entries() -> list[dict]:
    if REAL_EXPORT.exists():
        body = REAL_EXPORT.read_text("utf-8")
        return json.loads(body[body.index("=") + 1 :])
    texts = [
        "RT @someone: a retweet of a post https://t.co/x",
        "@friend thanks!",
        "Reading about language models and their quirks this morning &amp; loving it",
        "Long day at the office, but the sunset over the river made up for it #blessed",
    ]
    return [
        {
            "tweet": {
                "id_str": str(i),
                "full_text": text,
                "lang": "en",
                "created_at": "Wed Oct 19 20:07:25 +0000 2022",
                "entities": {"urls": []},
            }
        }
        for i, text in enumerate(texts)
    ]


def build_inputs(root: Path, n_posts: int) -> dict[str, Path]:
    entries = template_entries()
    out = []
    for i in range(n_posts):
        tweet = dict(entries[i % len(entries)]["tweet"])
        tweet["id_str"] = tweet["id"] = str(10**18 + i)
        out.append({"tweet": tweet})
    folder = root / "export"
    (folder / "data").mkdir(parents=True)
    tweets_js = folder / "data/tweets.js"
    tweets_js.write_text(
        "window.YTD.tweets.part0 = " + json.dumps(out, indent=2, ensure_ascii=False), "utf-8"
    )
    with zipfile.ZipFile(root / "export.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(tweets_js, "data/tweets.js")
    posts = read_source(str(folder), handle="bench").posts
    with (root / "posts.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "created_at", "text"])
        writer.writerows((p.id, p.created_at, p.text) for p in posts)
    prepare(root / "collected", [str(folder)], handles=["bench"])
    return {
        "x export (folder)": folder,
        "x export (.zip)": root / "export.zip",
        "csv": root / "posts.csv",
        "posts jsonl": root / "collected/posts/bench.jsonl",
    }


def time_prepare(source: Path, run_dir: Path) -> float:
    start = time.perf_counter()
    result = prepare(run_dir, [str(source)], handles=["bench"])
    elapsed = time.perf_counter() - start
    assert result.stats["accounts"][0]["downloaded"] > 0
    return elapsed


def _original_clean(tweet: str) -> str:
    """The original's clean_tweet (URLs out, whitespace collapsed)."""
    for start in ("http:", "https:"):
        tweet = re.sub(f" {start}\\S+", "", tweet)
        tweet = re.sub(f"{start}\\S+ ", "", tweet)
        tweet = re.sub(f"\n{start}\\S+ ", "", tweet)
        tweet = re.sub(f"\n{start}\\S+", "", tweet)
        tweet = re.sub(f"{start}\\S+", "", tweet)
    return " ".join(tweet.split()).strip()


def _original_is_short(tweet: str) -> bool:
    boring = ("http", "@", "#")
    return len([w for w in tweet.split() if all(b not in w.lower() for b in boring)]) < 3


def _tweets_js_rows(body: str) -> list[tuple[str, str, bool]]:
    entries = json.loads(body[body.index("=") + 1 :])
    return [(e["tweet"]["id_str"], e["tweet"]["full_text"], False) for e in entries]


def read_baseline_rows(label: str, source: Path) -> list[tuple[str, str, bool]]:
    """(id, text, is a repost) of each post, read plainly from ``source`` in its form."""
    if label == "x export (folder)":
        return _tweets_js_rows((source / "data/tweets.js").read_text("utf-8"))
    if label == "x export (.zip)":
        with zipfile.ZipFile(source) as archive:
            return _tweets_js_rows(archive.read("data/tweets.js").decode("utf-8"))
    if label == "csv":
        with source.open(newline="", encoding="utf-8") as handle:
            return [(row["id"], row["text"], False) for row in csv.DictReader(handle)]
    with source.open(encoding="utf-8") as handle:
        rows = (json.loads(line) for line in handle if line.strip())
        return [(row["id"], row["text"], bool(row.get("is_repost"))) for row in rows]


def time_baseline(label: str, source: Path, out: Path) -> float:
    """``source``, in its own form, through the original's approach, written plainly."""
    start = time.perf_counter()
    kept = []
    for post_id, raw, is_repost in read_baseline_rows(label, source):
        text = html.unescape(raw)
        if is_repost or text.startswith("RT @"):
            continue
        cleaned = _original_clean(text)
        if not _original_is_short(cleaned):
            kept.append({"id": post_id, "text": cleaned})
    random.Random(42).shuffle(kept)
    n_valid = len(kept) // 10
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("valid", kept[:n_valid]), ("train", kept[n_valid:])):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    return time.perf_counter() - start


def time_fork_comparison(folder: Path, root: Path, repeat: int) -> dict[str, float]:
    """Median seconds of the folder export with and without the fork, the two alternated
    (and which goes first swapped each round) so that a busy neighbour slows both alike."""
    times: dict[str, list[float]] = {"with fork": [], "without fork": []}
    for i in range(repeat):
        order = ["with fork", "without fork"] if i % 2 == 0 else ["without fork", "with fork"]
        for mode in order:
            if mode == "with fork":
                os.environ.pop("HUGGINGTWEETS_NO_FORK", None)
            else:
                os.environ["HUGGINGTWEETS_NO_FORK"] = "1"
            times[mode].append(time_prepare(folder, root / f"fork-{i}-{mode[:3]}"))
    os.environ.pop("HUGGINGTWEETS_NO_FORK", None)
    for mode, values in times.items():
        print(f"{mode:>14}: " + " ".join(f"{t:.2f}" for t in values))
    return {mode: statistics.median(values) for mode, values in times.items()}


def input_mb(source: Path) -> float:
    return (
        sum(p.stat().st_size for p in ([source] if source.is_file() else source.rglob("*"))) / 1e6
    )


def time_form(label: str, source: Path, root: Path, args: argparse.Namespace) -> dict:
    """One form's median seconds, ours and the baseline's on the same input, alternated
    (which goes first swapped each round) so that a busy neighbour slows both alike."""
    ours: list[float] = []
    base: list[float] = []
    for i in range(args.repeat):
        for mode in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            if mode == "ours":
                ours.append(time_prepare(source, root / f"run-{i}"))
            else:
                base.append(time_baseline(label, source, root / f"base-{i}"))
    median, baseline = statistics.median(ours), statistics.median(base)
    rate, size_mb = args.posts / median, input_mb(source)
    print(
        f"{label:>18}: {args.posts:,} posts ({size_mb:5.0f} MB) in {median:.2f} s "
        f"= {rate:>9,.0f} posts/s  ({rate / TARGET:.2f}x the target); baseline on the "
        f"same input {baseline:.2f} s = {args.posts / baseline:,.0f} posts/s: "
        f"{baseline / median:.2f}x the baseline"
    )
    return {
        "seconds": median,
        "posts_per_second": rate,
        "input_mb": size_mb,
        "baseline_seconds": baseline,
        "baseline_posts_per_second": args.posts / baseline,
        "speedup_over_baseline": baseline / median,
        "runs": ours,
        "baseline_runs": base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--fork", action="store_true", help="with and without the fork")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = build_inputs(root, args.posts)
        if args.fork:
            medians = time_fork_comparison(inputs["x export (folder)"], root, args.repeat)
            ratio = medians["without fork"] / medians["with fork"]
            print(
                f"medians: with {medians['with fork']:.2f} s, without "
                f"{medians['without fork']:.2f} s: the fork is {ratio:.2f}x as fast "
                f"({os.cpu_count()} CPUs)"
            )
            return
        for label, source in inputs.items():
            results[label] = time_form(label, source, root, args)
    print(f"(median of {args.repeat} runs each; {os.cpu_count()} CPUs)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"posts": args.posts, "results": results}, indent=2))


if __name__ == "__main__":
    main()
