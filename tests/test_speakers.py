"""Speakers in a cyborg (train --speaker-tokens, generate --as HANDLE), on the demo's two
accounts ROMEO and JULIET with the tiny model: the tokens in the tokenizer and before
each post, --as and the mix, the errors, the speaker embeddings saved by full and LoRA
training, the card's pipeline snippet, and evaluate's attribution figure."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
from collections import Counter

import orjson
import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.runs import RunDir
from huggingtweets.evaluate.attribution import attribution
from huggingtweets.generate.generator import GenerateOptions, Generator
from huggingtweets.model.speakers import (
    card_speakers,
    dataset_handles,
    draw_speakers,
    speaker_token,
)
from huggingtweets.train.packing import pack_blocks, read_texts

PROMPT = "My dream is"
HANDLES = ("romeo", "juliet")
# Enough for the speaker rows (both start as the same mean row) to move: the tiny base
# learns little in the demo's one epoch at 1e-3.
TRAIN = ("--base-model", "tiny", "--num-train-epochs", "1", "--learning-rate", "1e-2")


train_module = importlib.import_module("huggingtweets.train.recipe")  # the package exports train()
PACKED: list[list[list[int]]] = []  # the training blocks, as train packed them


@pytest.fixture(scope="module")
def cyborg(tmp_path_factory) -> RunDir:
    run = tmp_path_factory.mktemp("speakers") / "romeo-juliet"
    run_cli("prepare", *(f"sample:{h}" for h in HANDLES), "--out", run)

    def recording(*args, **kwargs):
        blocks, count = pack_blocks(*args, **kwargs)
        PACKED.append(blocks)
        return blocks, count

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "pack_blocks", recording)
        run_cli("train", run, *TRAIN, "--speaker-tokens", "--no-card")
    return RunDir(run)


@pytest.fixture(scope="module")
def lora_cyborg(cyborg, tmp_path_factory) -> RunDir:
    """The same posts with LoRA, on the first run's tiny base (no second tokenizer to learn)."""
    run = tmp_path_factory.mktemp("speakers-lora") / "romeo-juliet"
    for folder in ("posts", "dataset"):
        shutil.copytree(cyborg.root / folder, run / folder)
    base = cyborg.root / "tiny-base"
    run_cli(
        "train", run, "--base-model", base, "--lora", "--speaker-tokens", "--max-steps", "4",
        "--learning-rate", "1e-2", "--no-card",
    )  # fmt: skip
    return RunDir(run)


@pytest.fixture(scope="module")
def generator(cyborg) -> Generator:
    return Generator.load(cyborg.root)


def test_the_tokens_are_in_the_tokenizer_and_before_each_post(cyborg, generator):
    tokenizer = generator.tokenizer
    tokens = [speaker_token(h) for h in HANDLES]
    assert set(tokens) <= set(tokenizer.all_special_tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert len(set(ids)) == 2 and tokenizer.unk_token_id not in ids
    assert len(tokenizer) == generator.model.get_input_embeddings().weight.shape[0]
    assert [(s.handle, s.token) for s in generator.speakers] == list(
        zip(HANDLES, tokens, strict=True)
    )
    handles = dataset_handles(cyborg.train_path)
    assert sum(s.share for s in generator.speakers) == pytest.approx(1.0)
    assert generator.speakers[0].share == pytest.approx(handles.count("romeo") / len(handles))
    # As train packed them (training blocks first, then validation): the separator, the
    # account's token, the post.
    texts = read_texts(cyborg.train_path)
    id_of = dict(zip(HANDLES, ids, strict=True))
    block = [token for b in PACKED[0] for token in b]
    eos = tokenizer.eos_token_id
    starts = [i for i, t in enumerate(block) if t == eos]
    assert len(starts) == len(texts)
    assert [block[i + 1] for i in starts] == [id_of[h] for h in handles]
    first = block[starts[0] + 2 : starts[1]]
    assert tokenizer.decode(first) == texts[0]
    valid_handles = dataset_handles(cyborg.valid_path)
    valid = [token for b in PACKED[1] for token in b]
    assert [valid[i + 1] for i, t in enumerate(valid) if t == eos] == [
        id_of[h] for h in valid_handles
    ]


def test_as_writes_as_each_account_and_never_shows_the_token(generator):
    written = {}
    for handle in HANDLES:
        samples = generator.generate(
            PROMPT, GenerateOptions(num_return_sequences=6, seed=3, speaker=handle)
        ).samples
        assert {s.speaker for s in samples} == {handle}
        written[handle] = [s.text for s in samples]
        for text in written[handle]:
            assert text.startswith(PROMPT)
            assert "<|" not in text and "|>" not in text
    assert written["romeo"] != written["juliet"]  # same seed, another speaker token
    # "@" and the case do not matter; the same seed gives the same posts.
    again = generator.generate(
        PROMPT, GenerateOptions(num_return_sequences=6, seed=3, speaker="@ROMEO")
    )
    assert [s.text for s in again.samples] == written["romeo"]
    posts = generator.write_posts(GenerateOptions(num_return_sequences=4, seed=1, speaker="juliet"))
    assert all("<|" not in s.text for s in posts.samples)


def test_without_as_the_mix_of_accounts_follows_the_seed(generator):
    def mix(seed):
        result = generator.generate(PROMPT, GenerateOptions(num_return_sequences=12, seed=seed))
        return [s.speaker for s in result.samples], [s.text for s in result.samples]

    speakers, texts = mix(5)
    assert mix(5) == (speakers, texts)
    assert speakers == [s.handle for s in draw_speakers(generator.speakers, 12, 5)]
    assert set(speakers) == set(HANDLES)
    assert any(mix(seed)[0] != speakers for seed in (6, 7, 8))
    assert all("<|" not in t for t in texts)
    # Over many draws, each account's share of the training posts.
    drawn = Counter(s.handle for s in draw_speakers(generator.speakers, 20_000, 1))
    for speaker in generator.speakers:
        assert drawn[speaker.handle] / 20_000 == pytest.approx(speaker.share, abs=0.02)


def test_the_cli_writes_as_an_account_and_says_who_wrote_each_post(cyborg):
    result = run_cli(
        "generate", cyborg.root, PROMPT, "-n", "3", "--seed", "2", "--as", "juliet", "--json"
    )
    data = orjson.loads(result.stdout)
    assert [s["speaker"] for s in data["samples"]] == ["juliet"] * 3
    assert all("<|" not in s["text"] for s in data["samples"])
    # without --json or --as: each post says whose voice it was drawn in
    text = run_cli("generate", cyborg.root, PROMPT, "-n", "4", "--seed", "2").stdout
    drawn = [line.strip() for line in text.splitlines() if line.strip().startswith("as @")]
    assert len(drawn) == 4 and set(drawn) <= {"as @romeo", "as @juliet"}


def _one_line_error(result) -> str:
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_as_an_account_that_was_not_trained_is_refused_naming_the_trained_ones(cyborg, generator):
    line = _one_line_error(run_cli("generate", cyborg.root, PROMPT, "--as", "tybalt", expect=2))
    assert "tybalt" in line and "@romeo" in line and "@juliet" in line
    with pytest.raises(HuggingtweetsError, match="not one of"):
        generator.generate(PROMPT, GenerateOptions(speaker="mercutio"))


def test_as_on_a_model_without_speaker_tokens_is_refused(cyborg, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(cyborg.model_dir, model)
    config = orjson.loads((model / "config.json").read_bytes())
    del config["task_specific_params"]["speakers"]
    (model / "config.json").write_bytes(orjson.dumps(config))
    line = _one_line_error(run_cli("generate", model, PROMPT, "--as", "romeo", expect=2))
    assert "without speaker tokens" in line and "--speaker-tokens" in line
    # Without --as it still writes, as a model without speakers does.
    assert run_cli("generate", model, PROMPT, "-n", "1", "--seed", "1").exit_code == 0


def test_a_damaged_speakers_entry_is_refused_in_one_line(cyborg, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(cyborg.model_dir, model)
    config = orjson.loads((model / "config.json").read_bytes())
    config["task_specific_params"]["speakers"] = [{"handle": "romeo", "token": "<|@nobody|>"}]
    (model / "config.json").write_bytes(orjson.dumps(config))
    line = _one_line_error(run_cli("generate", model, PROMPT, "-n", "1", expect=2))
    assert "damaged" in line and "speakers" in line


def test_speaker_tokens_with_one_account_are_refused(tmp_path):
    run = tmp_path / "romeo"
    run_cli("prepare", "sample:romeo", "--out", run)
    result = run_cli("train", run, "--base-model", "tiny", "--speaker-tokens", expect=2)
    line = _one_line_error(result)
    assert "2-3 accounts" in line and "@romeo" in line
    assert not (run / "model").exists()


def _speaker_rows(run: RunDir):
    weights = load_file(str(run.model_dir / "model.safetensors"))
    embeddings = weights["transformer.wte.weight"]
    tokenizer = Generator.load(run.root).tokenizer
    ids = tokenizer.convert_tokens_to_ids([speaker_token(h) for h in HANDLES])
    return embeddings, ids


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_training_saves_the_speaker_embeddings(kind, cyborg, lora_cyborg):
    run = cyborg if kind == "full" else lora_cyborg
    embeddings, (romeo, juliet) = _speaker_rows(run)
    # Both rows start as the same mean row: apart, they were trained, and saved.
    assert (embeddings[romeo] - embeddings[juliet]).abs().max() > 1e-3
    if kind == "lora":
        base = load_file(str(cyborg.root / "tiny-base" / "model.safetensors"))
        base = base["transformer.wte.weight"]
        old = base.shape[0]
        assert torch.equal(embeddings[:old], base)  # the rest of the embeddings frozen
        for row in (romeo, juliet):
            assert (embeddings[row] - base.mean(0)).abs().max() > 1e-3
        # The merged model reloads (strictly) and writes as each account.
        generator = Generator.load(run.root)
        texts = {
            h: generator.generate(
                PROMPT, GenerateOptions(num_return_sequences=4, seed=1, speaker=h)
            ).samples
            for h in HANDLES
        }
        assert [s.text for s in texts["romeo"]] != [s.text for s in texts["juliet"]]


def test_the_cards_pipeline_snippet_writes_as_an_account(cyborg, generator):
    from transformers import pipeline

    snippet = pipeline("text-generation", model=str(cyborg.model_dir))
    plain = snippet(PROMPT, num_return_sequences=2)
    assert all(o["generated_text"].startswith(PROMPT) for o in plain)
    prefix = ast.literal_eval(card_speakers(cyborg.model_dir)["prefix_literal"])
    assert prefix == "<|endoftext|><|@romeo|>"
    for seed in (0, 1):
        torch.manual_seed(seed)
        theirs = [
            o["generated_text"] for o in snippet(PROMPT, prefix=prefix, num_return_sequences=5)
        ]
        assert all("<|" not in t for t in theirs)
        options = GenerateOptions(
            num_return_sequences=5, seed=seed, as_pipeline=True, speaker="romeo"
        )
        ours = [s.text for s in generator.generate(PROMPT, options).samples]
        assert ours == [t.split("\n", 1)[0].rstrip() for t in theirs]


# -- evaluate ---------------------------------------------------------------------------

# Two accounts that write nothing alike.
SHOUTS = [f"WHY IS THE {w} SO LOUD TODAY!!! {n}" for w in ("DOG", "BUS", "SEA") for n in range(4)]
WHISPERS = [f"quietly, the {w} sleeps... ({n})" for w in ("cat", "moon", "tea") for n in range(4)]


def test_attribution_on_posts_whose_answer_is_known():
    real = {"loud": SHOUTS, "soft": WHISPERS}
    right = attribution(real, {"loud": SHOUTS, "soft": WHISPERS}, seed=1)
    assert right["accuracy"] == 1.0 and right["chance"] == 0.5 and right["samples"] == 24
    assert right["ci_low"] > 0.5 and right["verdict"].startswith("each account")
    assert right["real_accuracy"] == 1.0  # the accounts' own posts: told apart
    assert right["per_account"]["loud"]["accuracy"] == 1.0
    fewer = attribution(real, {"loud": SHOUTS[:5], "soft": WHISPERS[:5]}, seed=1)
    assert fewer["accuracy"] == 1.0 and fewer["verdict"].startswith("better than chance")
    swapped = attribution(real, {"loud": WHISPERS[:5], "soft": SHOUTS[:5]}, seed=1)
    assert swapped["accuracy"] == 0.0 and swapped["verdict"].startswith("worse than chance")
    one_voice = attribution(real, {"loud": SHOUTS[:6], "soft": SHOUTS[6:]}, seed=1)
    assert one_voice["accuracy"] == 0.5  # everything given to "loud": chance
    assert one_voice["per_account"]["soft"]["accuracy"] == 0.0
    # Accounts whose real posts look alike: the classifier cannot judge the samples.
    alike = attribution({"a": SHOUTS, "b": list(SHOUTS)}, {"a": SHOUTS, "b": WHISPERS}, 1)
    assert alike["real_ci_low"] <= 0.5  # each post is judged by its twin, of the other account
    assert alike["verdict"].startswith("cannot judge")
    few = attribution({"loud": SHOUTS, "soft": WHISPERS[:3]}, {"loud": SHOUTS, "soft": SHOUTS}, 1)
    assert "accuracy" not in few and "@soft (3)" in few["skipped"]


def test_evaluate_reports_the_attribution_and_the_card_shows_it(cyborg):
    run_cli("evaluate", cyborg.root, "--samples", "20", "--no-card")
    evaluation = orjson.loads((cyborg.root / "evaluation.json").read_bytes())
    score = evaluation["speakers"]
    assert score["accounts"] == 2 and score["chance"] == 0.5 and score["samples"] == 20
    assert {h: r["samples"] for h, r in score["per_account"].items()} == {"romeo": 10, "juliet": 10}
    right = sum(r["accuracy"] * r["samples"] for r in score["per_account"].values())
    assert score["accuracy"] == pytest.approx(right / 20)
    assert score["ci_low"] <= score["accuracy"] <= score["ci_high"]
    # Each account's posts are compared with the samples written as it.
    assert [(g["group"], g["posts"]["bot"]) for g in evaluation["groups"][1:]] == [
        ("romeo", 10),
        ("juliet", 10),
    ]
    run_cli("card", cyborg.root, "--samples", "2")
    card = (cyborg.model_dir / "README.md").read_text()
    assert "**Whose voice?**" in card
    assert f"It attributed {score['accuracy']:.0%} of them" in card
    assert "| @juliet | 10 |" in card
    assert "--as romeo" in card
    # The card's Python snippet, pointed at the local folder, runs.
    code = "\n".join(re.findall(r"```python\n(.*?)```", card, re.DOTALL))
    code = re.sub(r"model='[^']*'", f"model={str(cyborg.model_dir)!r}", code)
    namespace: dict = {}
    exec(compile(code, "card-snippet", "exec"), namespace)  # our own card's code
