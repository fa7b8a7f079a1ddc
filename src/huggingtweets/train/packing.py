"""Training data: posts packed into fixed-size blocks of tokens, the original's format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import iter_jsonl


def read_texts(path: Path) -> list[str]:
    """The ``text`` of every row of a dataset file; a row without one is refused."""
    texts = []
    for line_number, row in iter_jsonl(path):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise HuggingtweetsError(
                f"{path}, line {line_number}: expected an object with a text string; "
                "prepare the run again (huggingtweets prepare --out RUN_DIR)"
            )
        texts.append(text)
    return texts


def pack_blocks(
    texts: Sequence[str],
    tokenizer,
    block_size: int,
    speaker_ids: Sequence[int] | None = None,
) -> tuple[list[list[int]], int]:
    """The original format: EOS before every post, all concatenated and cut into blocks.

    ``speaker_ids``: one token per post, put between the EOS and the post (its account's
    speaker token, see speakers.py). The last, shorter block is kept (the collator pads
    it) rather than dropped: with a few hundred posts, every post counts. Returns
    (blocks, number of tokens).
    """
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    for i, post_ids in enumerate(encoded):
        ids.append(eos)
        if speaker_ids is not None:
            ids.append(speaker_ids[i])
        ids.extend(post_ids)
    blocks = [ids[i : i + block_size] for i in range(0, len(ids), block_size)]
    if blocks and len(blocks[-1]) < 2:  # a lone token teaches nothing
        blocks.pop()
    return blocks, len(ids)


class Blocks:
    """A map-style dataset of token blocks (what Trainer's DataLoader needs)."""

    def __init__(self, blocks: list[list[int]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i]}


def collate_blocks(pad_id: int):
    """Pads a batch of blocks; padding is masked out of attention and of the loss."""
    import torch

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            mask[i, :n] = 1
        labels = input_ids.masked_fill(mask == 0, -100)  # padding is not predicted
        for i, row in enumerate(rows):
            if "labels" in row:  # given by the dataset (goldfish.GoldfishBlocks)
                labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return collate
