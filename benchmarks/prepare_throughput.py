"""Benchmark: read and prepare 100,000 posts, end to end (issue 2's target: ≥ 100,000 posts/s).

Builds an X data export of N tweets by repeating the real entries of
../shared/data/x-archive-smithjd (fresh ids, same structure and text), or synthetic
entries when that export is absent, then times ``huggingtweets.prepare`` on it: parsing
tweets.js, normalizing records, writing posts/, cleaning, splitting and writing dataset/.
A second figure times the same run from the .zip of the export.

    python benchmarks/prepare_throughput.py [--posts 100000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from huggingtweets import prepare

REAL_EXPORT = Path(__file__).resolve().parents[2] / "shared/data/x-archive-smithjd/data/tweets.js"


def template_entries() -> list[dict]:
    if REAL_EXPORT.exists():
        body = REAL_EXPORT.read_text("utf-8")
        return json.loads(body[body.index("=") + 1 :])
    return [
        {
            "tweet": {
                "id_str": str(i),
                "full_text": text,
                "created_at": "Wed Oct 19 20:07:25 +0000 2022",
                "lang": "en",
                "entities": {"urls": []},
            }
        }
        for i, text in enumerate(
            [
                "RT @someone: a retweet of a post https://t.co/x",
                "@friend thanks!",
                "Reading about language models and their quirks this morning &amp; loving it",
                "Long day at the office, but the sunset over the river made up for it #blessed",
            ]
        )
    ]


def build_export(root: Path, n_posts: int) -> Path:
    entries = template_entries()
    out = []
    for i in range(n_posts):
        tweet = dict(entries[i % len(entries)]["tweet"])
        tweet["id_str"] = tweet["id"] = str(10**18 + i)
        out.append({"tweet": tweet})
    folder = root / "export"
    (folder / "data").mkdir(parents=True)
    (folder / "data/tweets.js").write_text(
        "window.YTD.tweets.part0 = " + json.dumps(out, indent=2, ensure_ascii=False), "utf-8"
    )
    with zipfile.ZipFile(root / "export.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(folder / "data/tweets.js", "data/tweets.js")
    return folder


def time_prepare(source: Path, run_dir: Path) -> float:
    start = time.perf_counter()
    result = prepare(run_dir, [str(source)], handles=["bench"])
    elapsed = time.perf_counter() - start
    assert result.stats["accounts"][0]["downloaded"] > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = build_export(root, args.posts)
        size_mb = (folder / "data/tweets.js").stat().st_size / 1e6
        results = {}
        for label, source in (("folder", folder), ("zip", root / "export.zip")):
            times = [time_prepare(source, root / f"run-{label}-{i}") for i in range(args.repeat)]
            median = statistics.median(times)
            results[label] = {"seconds": median, "posts_per_second": args.posts / median}
            print(
                f"{label:>6}: {args.posts:,} posts ({size_mb:.0f} MB tweets.js) in {median:.2f} s "
                f"(median of {args.repeat}) = {args.posts / median:,.0f} posts/s"
            )
    target = 100_000
    ratio = results["folder"]["posts_per_second"] / target
    print(
        f"target {target:,} posts/s: {ratio:.2f}x of target ({'met' if ratio >= 1 else 'NOT met'})"
    )
    if args.json:
        args.json.write_text(json.dumps({"posts": args.posts, "results": results}, indent=2))


if __name__ == "__main__":
    main()
