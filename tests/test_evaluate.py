"""evaluate: every statistic on hand-made posts whose value is known, then the stage on the
demo's trained run through the real CLI (evaluation.json, the picture, the card)."""

from __future__ import annotations

import shutil

import orjson
import pytest
from conftest import run_cli
from demo_run import demo_run

from huggingtweets.core.runs import EVALUATION_FILE, EVALUATION_PICTURE, RunDir
from huggingtweets.evaluate import style
from huggingtweets.evaluate.evaluation import (
    model_fingerprint,
    quick_to_evaluate,
)

# Held-out-like posts: varied, with the features counted below.
REAL = [
    f"{opener} the {noun} is {adj} today{end}"
    for opener in ("Well,", "honestly", "So", "Why do I think", "Look:")
    for noun in ("weather", "train", "coffee", "meeting", "garden", "cat")
    for adj, end in (("lovely", "!"), ("late again", "?"), ("fine", "."))
]


def test_identical_sets_are_indistinguishable_and_zero_apart():
    result = style.compare(REAL, list(REAL), seed=1)
    score = result["real_or_bot"]
    assert score["accuracy"] == 0.5  # each post and its twin share a fold: a coin toss
    assert score["ci_low"] < 0.5 < score["ci_high"]
    assert score["verdict"] == "cannot tell them apart"
    for unit in ("words", "characters"):
        assert result[unit]["wasserstein"] == 0.0
        assert result[unit]["ks"] == 0.0
    for rate in result["rates"].values():
        assert rate["real"] == rate["bot"]
    assert result["languages"]["distance"] == 0.0
    assert result["distinct"]["1"]["real"] == result["distinct"]["1"]["bot"]
    assert result["top_ngrams"]["1"]["overlap"] == 1.0
    assert result["top_ngrams"]["2"]["overlap"] == 1.0


def test_aaaa_posts_are_far_from_real_ones():
    result = style.compare(REAL, ["aaaa"] * len(REAL), seed=1)
    score = result["real_or_bot"]
    assert score["accuracy"] == 1.0
    assert score["ci_low"] > 0.9
    assert score["verdict"] == "tells them apart easily"
    assert result["words"]["ks"] == 1.0
    assert result["words"]["wasserstein"] == pytest.approx(
        sum(len(t.split()) for t in REAL) / len(REAL) - 1
    )
    assert result["characters"]["bot"]["median"] == 4
    assert result["top_ngrams"]["1"]["overlap"] == 0.0
    assert result["rates"]["capitalised"]["bot"] == 0.0
    assert result["distinct"]["1"]["bot"] == pytest.approx(1 / len(REAL))
    assert result["languages"]["distance"] is None  # "aaaa" is too short to have a language


def test_rates_count_what_they_say():
    posts = ["Hello #tag there 😀?", "no capitals here!", "@someone Ok", "123 ４５６", "日本語です"]
    rates = {name: style.rate(posts, test) for name, (_, test) in style.RATES.items()}
    assert rates == {
        "emoji": 1 / 5,
        "hashtags": 1 / 5,
        "mentions": 1 / 5,
        "questions": 1 / 5,
        "exclamations": 1 / 5,
    }
    # Posts without a cased letter (digits, Japanese) count neither way; "@someone Ok"
    # starts with a lower-case letter.
    assert style.rate(posts, style.capitalised) == pytest.approx(1 / 3)


def test_distinct_and_top_ngrams():
    assert style.distinct(["a b a b"], 1) == 0.5
    assert style.distinct(["a b a b"], 2) == pytest.approx(2 / 3)
    top = style.top_ngram_overlap(["x y z", "x y"], ["x q", "x"], n=1, k=2)
    assert top["real"] == ["x", "y"] and top["bot"] == ["x", "q"] and top["overlap"] == 0.5


def test_wilson_interval_and_too_few_posts():
    low, high = style.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    skipped = style.real_or_bot(REAL[:10], REAL[10:30], seed=1)
    assert "accuracy" not in skipped
    assert skipped["skipped"] == (
        f"too few posts to train a classifier: 10 of each, needs {style.MIN_POSTS}"
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A copy of the demo's run, evaluated through the CLI with 40 samples."""
    demo = demo_run(tmp_path_factory)
    run_dir = tmp_path_factory.mktemp("evaluate") / "rj"
    shutil.copytree(demo.run_dir, run_dir)
    result = run_cli("evaluate", run_dir, "--samples", 40, "--seed", 3)
    return run_dir, result


@pytest.mark.slow
def test_evaluate_writes_the_scorecard_and_the_cards_section(evaluated):
    run_dir, result = evaluated
    evaluation = orjson.loads((run_dir / EVALUATION_FILE).read_bytes())
    assert evaluation["samples"] == 40 and evaluation["seed"] == 3
    assert evaluation["model_fingerprint"] == model_fingerprint(run_dir / "model")
    valid = (run_dir / "dataset" / "valid.jsonl").read_bytes().splitlines()
    assert evaluation["held_out"] == len(valid)
    assert evaluation["accounts"] == ["romeo", "juliet"]
    groups = {g["group"]: g for g in evaluation["groups"]}
    assert list(groups) == ["all", "romeo", "juliet"]
    assert groups["romeo"]["held_out"] + groups["juliet"]["held_out"] == len(valid)
    overall = groups["all"]
    assert overall["posts"] == {"real": len(valid), "bot": 40 - evaluation["empty_samples"]}
    score = overall["real_or_bot"]
    assert score["posts_each"] == min(len(valid), overall["posts"]["bot"])
    assert 0 <= score["ci_low"] <= score["accuracy"] <= score["ci_high"] <= 1
    # Perplexity per token, recomputed; training's figure weighs each block alike, so the
    # two agree only roughly (the last block is short).
    metrics = orjson.loads((run_dir / "metrics.json").read_bytes())
    perplexity = overall["perplexity"]
    assert perplexity["base_source"] == "recomputed"  # the run's tiny-base/ is here
    assert perplexity["fine_tuned_loss"] == pytest.approx(metrics["eval_loss_after"], abs=0.3)
    assert perplexity["base_loss"] == pytest.approx(metrics["eval_loss_before"], abs=0.3)
    assert perplexity["fine_tuned"] < perplexity["base"]
    memo = evaluation["memorization"]
    assert memo["checked"] and memo["total"] == 40 and memo["ngram"] == 8
    assert (run_dir / "model" / EVALUATION_PICTURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (run_dir / "model" / "README.md").read_text()
    assert "## Does it sound like them?" in card
    assert f"![Does it sound like them?]({EVALUATION_PICTURE})" in card
    assert f"| @romeo ({groups['romeo']['real_or_bot']['posts_each']} of each) |" in card
    assert "Real or bot?" in result.stdout and "Perplexity" in result.stdout
    assert quick_to_evaluate(run_dir / "model")  # a pipeline may run it after training


@pytest.mark.slow
def test_the_card_shows_an_evaluation_only_of_the_model_in_place(evaluated, tmp_path):
    run_dir, _ = evaluated
    copy = tmp_path / "rj"
    shutil.copytree(run_dir, copy)
    run_cli("card", copy, "--samples", 0)
    assert "## Does it sound like them?" in (copy / "model" / "README.md").read_text()
    # A model trained since (another fingerprint): its card says nothing of the old one.
    path = copy / EVALUATION_FILE
    evaluation = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**evaluation, "model_fingerprint": "another model"}))
    run_cli("card", copy, "--samples", 0)
    assert "Does it sound like them?" not in (copy / "model" / "README.md").read_text()


@pytest.mark.slow
def test_evaluate_errors(evaluated, tmp_path):
    run_dir, _ = evaluated
    no_model = tmp_path / "no-model"
    shutil.copytree(run_dir / "dataset", no_model / "dataset")
    result = run_cli("evaluate", no_model, expect=2)
    assert result.stderr == (
        f"Error: {no_model} has no trained model: run `huggingtweets train {no_model}` first\n"
    )
    few = tmp_path / "few"
    shutil.copytree(run_dir, few)
    valid = RunDir(few).valid_path
    valid.write_bytes(b"\n".join(valid.read_bytes().splitlines()[:7]) + b"\n")
    result = run_cli("evaluate", few, expect=2)
    assert (
        "holds 7 held-out posts; telling real posts from the bot's needs at least "
        f"{style.MIN_POSTS}: prepare again" in result.stderr
    )
    assert "--validation-split-percentage" in result.stderr
    result = run_cli("evaluate", run_dir, "--samples", 5, expect=2)
    assert result.stderr.startswith(f"Error: --samples must be >={style.MIN_POSTS}")


def test_rewriting_the_card_keeps_the_repo_id_it_was_written_for(tmp_path):
    from huggingtweets.publish.hub import card_repo_id

    card = tmp_path / "README.md"
    card.write_text(
        "---\nlanguage: en\nthumbnail: https://huggingface.co/me/my-bot/resolve/main/"
        "preview.png\ntags:\n- huggingtweets\n---\n\nthumbnail: https://huggingface.co/x/y/"
        "resolve/main/z.png\n"
    )
    assert card_repo_id(tmp_path) == "me/my-bot"
    card.write_text("no front matter")
    assert card_repo_id(tmp_path) is None
    assert card_repo_id(tmp_path / "missing") is None


@pytest.mark.slow
def test_a_damaged_evaluation_is_one_line(evaluated, tmp_path):
    run_dir, _ = evaluated
    copy = tmp_path / "rj"
    shutil.copytree(run_dir, copy)
    path = copy / EVALUATION_FILE
    evaluation = orjson.loads(path.read_bytes())
    del evaluation["groups"][0]["words"]
    path.write_bytes(orjson.dumps(evaluation))
    result = run_cli("card", copy, "--samples", 0, expect=2)
    assert result.stderr == (
        f"Error: {path} is damaged: run `huggingtweets evaluate {copy}` again, or delete it\n"
    )
    (copy / "dataset" / "stats.json").write_text("{not json")  # only a hint to evaluate
    path.unlink()
    run_cli("evaluate", copy, "--samples", 20, "--no-card")
    assert orjson.loads(path.read_bytes())["accounts"] == ["romeo", "juliet"]


def _small_run(tmp_path, demo_run_dir):
    """The demo's dataset in a fresh run directory (no model yet)."""
    run_dir = tmp_path / "rj"
    run_dir.mkdir(parents=True)
    for name in ("dataset", "posts"):
        if (demo_run_dir / name).exists():
            shutil.copytree(demo_run_dir / name, run_dir / name)
    for path in demo_run_dir.glob("*.json"):
        if path.name not in (EVALUATION_FILE, "metrics.json"):
            shutil.copy2(path, run_dir / path.name)
    return run_dir


@pytest.mark.slow
def test_training_evaluates_by_default_when_it_is_quick(tmp_path, tmp_path_factory, monkeypatch):
    from huggingtweets.core.events import Reporter
    from huggingtweets.evaluate.evaluation import EvaluateOptions
    from huggingtweets.pipeline import EVALUATE_ENV, make_bot
    from huggingtweets.train.recipe import TrainOptions

    monkeypatch.delenv(EVALUATE_ENV)  # conftest turns it off for the other trainings
    run_dir = _small_run(tmp_path, demo_run(tmp_path_factory).run_dir)
    events = []
    bot = make_bot(
        run_dir,
        train=TrainOptions(base_model="tiny", max_steps=2),
        evaluate_options=EvaluateOptions(samples=30, seed=5),
        reporter=Reporter(events.append),
    )
    assert bot.evaluated is not None
    evaluation = orjson.loads((run_dir / EVALUATION_FILE).read_bytes())
    assert evaluation["samples"] == 30 and evaluation["seed"] == 5
    assert evaluation["model_fingerprint"] == model_fingerprint(run_dir / "model")
    card = (run_dir / "model" / "README.md").read_text(encoding="utf-8")
    assert "Does it sound like them?" in card
    order = [e.stage for e in events if e.kind == "end"]
    assert order.index("evaluate") < order.index("card")  # the card shows the evaluation


@pytest.mark.slow
def test_a_large_model_or_never_skips_it_and_always_insists(
    tmp_path, tmp_path_factory, monkeypatch
):
    from huggingtweets.evaluate import evaluation as evaluate_module

    demo = demo_run(tmp_path_factory)
    monkeypatch.delenv("HUGGINGTWEETS_EVALUATE")
    # a model "too large to evaluate in a minute here": the threshold below the tiny model
    monkeypatch.setitem(evaluate_module.QUICK_PARAMETERS, "cpu", 1)
    monkeypatch.setitem(evaluate_module.QUICK_PARAMETERS, "gpu", 1)
    run_dir = _small_run(tmp_path, demo.run_dir)
    result = run_cli("train", run_dir, "--base-model", "tiny", "--max-steps", 2, "--no-card")
    assert not (run_dir / EVALUATION_FILE).exists()
    assert "huggingtweets evaluate" in result.output  # says how to run it later

    never = _small_run(tmp_path / "never", demo.run_dir)
    monkeypatch.setitem(evaluate_module.QUICK_PARAMETERS, "cpu", 10**12)
    run_cli(
        "train", never, "--base-model", "tiny", "--max-steps", 2, "--no-card", "--evaluate", "never"
    )
    assert not (never / EVALUATION_FILE).exists()

    # always: too few held-out posts is then an error, one line, exit 2
    few = _small_run(tmp_path / "few", demo.run_dir)
    valid = next((few / "dataset").glob("valid*"))
    lines = valid.read_text(encoding="utf-8").splitlines()
    valid.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    result = run_cli(
        "train",
        few,
        "--base-model",
        "tiny",
        "--max-steps",
        2,
        "--no-card",
        "--evaluate",
        "always",
        expect=2,
    )
    assert "held-out post" in result.stderr and "Traceback" not in result.output
    # a bad value in the environment is one line too
    monkeypatch.setenv("HUGGINGTWEETS_EVALUATE", "sometimes")
    result = run_cli("train", few, "--base-model", "tiny", "--max-steps", 2, expect=2)
    assert "sometimes" in result.stderr
