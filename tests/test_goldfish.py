"""The goldfish loss: 1 in k tokens out of the loss, the same ones for the same context."""

from __future__ import annotations

import random
import shutil

import pytest

from huggingtweets.train.goldfish import IGNORED, GoldfishBlocks, goldfish_mask
from huggingtweets.train.packing import Blocks, collate_blocks

SEP = 0


def test_the_same_post_loses_the_same_tokens_wherever_it_is():
    rng = random.Random(1)
    post = [rng.randrange(1, 500) for _ in range(60)]
    others = [[rng.randrange(1, 500) for _ in range(rng.randrange(5, 40))] for _ in range(3)]
    stream = [SEP, *others[0], SEP, *post, SEP, *others[1], *others[2], SEP, *post, SEP, *post]
    mask = goldfish_mask(stream, SEP, k=4)
    starts = [i + 1 for i, token in enumerate(stream) if token == SEP and stream[i + 1] == post[0]]
    masks = [mask[s : s + len(post)] for s in starts]
    assert len(masks) == 3 and masks[0] == masks[1] == masks[2]
    assert any(masks[0])  # 60 tokens at 1 in 4: some are dropped
    assert not masks[0][0]  # a post's first token is always learnt ...
    assert not any(m for token, m in zip(stream, mask, strict=True) if token == SEP)  # ... and
    # every separator


@pytest.mark.parametrize("k", [2, 4, 10])
def test_one_in_k_tokens_is_dropped(k):
    rng = random.Random(k)
    stream = []
    for _ in range(400):
        stream += [SEP] + [rng.randrange(1, 5000) for _ in range(50)]
    mask = goldfish_mask(stream, SEP, k)
    learnable = len(stream) - 2 * 400  # separators and first tokens are never dropped
    assert sum(mask) / learnable == pytest.approx(1 / k, rel=0.1)


def test_the_context_decides_not_the_position():
    # The same 13 tokens before a token decide it, whatever came earlier in the post.
    tail = list(range(100, 120))
    a = goldfish_mask([SEP, 1, 2, 3, *tail], SEP, k=2)
    b = goldfish_mask([SEP, 7, 8, 9, 10, 11, *tail], SEP, k=2)
    assert a[-7:] == b[-7:]  # the last 7 tokens each have 13 tokens of the tail before them


def test_goldfish_blocks_label_the_dropped_tokens_and_the_collator_keeps_them():
    rng = random.Random(3)
    stream = []
    for _ in range(20):
        stream += [SEP] + [rng.randrange(1, 500) for _ in range(30)]
    blocks = [stream[i : i + 64] for i in range(0, len(stream), 64)]
    dataset = GoldfishBlocks(blocks, SEP, k=4)
    mask = goldfish_mask(stream, SEP, k=4)
    labels = [label for i in range(len(dataset)) for label in dataset[i]["labels"]]
    assert labels == [IGNORED if m else t for t, m in zip(stream, mask, strict=True)]
    assert dataset.dropped == sum(mask) > 0
    batch = collate_blocks(pad_id=SEP)([dataset[0], dataset[len(dataset) - 1]])
    assert batch["labels"][0].tolist() == dataset[0]["labels"]
    last = dataset[len(dataset) - 1]["labels"]
    assert batch["labels"][1].tolist() == last + [IGNORED] * (64 - len(last))  # padding
    plain = collate_blocks(pad_id=SEP)([Blocks(blocks)[0]])  # validation: every token
    assert plain["labels"][0].tolist() == blocks[0]


@pytest.mark.slow
def test_training_with_goldfish_drops_tokens_from_the_training_loss_only(tmp_path):
    from transformers import TrainerCallback

    from huggingtweets.model.architectures import build_tiny_model
    from huggingtweets.prepare.dataset import prepare
    from huggingtweets.train.packing import read_texts
    from huggingtweets.train.recipe import TrainOptions, train

    run = tmp_path / "run"
    prepare(run, ["sample:romeo"])
    shutil.copytree(run, tmp_path / "plain")  # the same data, trained without goldfish
    base = build_tiny_model(read_texts(run / "dataset" / "train.jsonl"), tmp_path / "base", "gpt2")
    seen = {"eval_ignored": 0, "eval_tokens": 0}

    class Look(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            seen["train"] = train_dataloader.dataset

        def on_evaluate(self, args, state, control, eval_dataloader=None, **kwargs):
            for batch in eval_dataloader:  # what every evaluation's loss was taken over
                real = batch["attention_mask"] == 1
                seen["eval_tokens"] += int(real.sum())
                seen["eval_ignored"] += int((batch["labels"][real] == IGNORED).sum())

    options = TrainOptions(base_model=str(base), max_steps=2, goldfish_k=4, block_size=64)
    result = train(run, options, callbacks=[Look()])
    assert isinstance(seen["train"], GoldfishBlocks)
    assert seen["train"].dropped / seen["train"].tokens == pytest.approx(0.25, abs=0.05)
    assert result.metrics["hyperparameters"]["goldfish_k"] == 4
    # The evaluation is untouched: every real token is in its loss (goldfish on the
    # validation blocks would leave ~1 in 4 out) ...
    assert seen["eval_tokens"] > 0 and seen["eval_ignored"] == 0
    # ... so the base model's validation loss is the one a run without goldfish measures
    # (the same base, the same validation blocks; over 3/4 of the tokens it would differ).
    options = TrainOptions(base_model=str(base), max_steps=2, block_size=64)
    plain = train(tmp_path / "plain", options)
    assert plain.metrics["hyperparameters"]["goldfish_k"] is None
    before = result.metrics["eval_loss_before"]
    assert before == pytest.approx(plain.metrics["eval_loss_before"], rel=1e-6)
    shutil.rmtree(run)
