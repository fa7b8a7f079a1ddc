"""The goldfish loss (Hans et al., 2024): learn the posts' style, not their words.

Training on a few hundred posts for many epochs teaches a model to recite them. The
goldfish loss leaves a pseudo-random 1 in ``k`` of the tokens out of the loss, so the
model never learns to predict them, and a post cannot be reproduced verbatim. Which
tokens is decided by a hash of the ``h`` tokens before each one, so that a post seen
twice (a repost, a post the balancing of several accounts repeats, every epoch) loses
the same tokens each time: an independent random mask per pass would, over the epochs,
let every token through.

The context is read within a post (from its separator on): a post is masked the same
wherever packing puts it. Only the training blocks get the mask; the validation loss
is the usual one, over every token.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

# The paper's h: tokens of context hashed to decide a token's fate.
GOLDFISH_CONTEXT = 13
IGNORED = -100  # the label the loss skips


def dropped(context: Sequence[int], k: int) -> bool:
    """Whether the token after ``context`` is left out of the loss: 1 in ``k`` contexts."""
    digest = hashlib.blake2b(array("q", context).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % k == 0


def goldfish_mask(
    ids: Sequence[int], separator: int, k: int, h: int = GOLDFISH_CONTEXT
) -> list[bool]:
    """For each token of the packed stream ``ids``, whether the loss leaves it out.

    A token is judged by the (at most ``h``) tokens before it since the last
    ``separator`` (included). The separators themselves are always learnt (they teach
    where a post ends), and so is a post's first token (its context, the separator alone,
    is the same for every post)."""
    mask = []
    start = 0  # where the current post's context begins: its separator
    for i, token in enumerate(ids):
        if token == separator:
            mask.append(False)
            start = i
            continue
        mask.append(i > start + 1 and dropped(ids[max(start, i - h) : i], k))
    return mask


class GoldfishBlocks:
    """Training blocks with their labels: the tokens the goldfish mask drops are
    ``IGNORED`` (the collator keeps given labels)."""

    def __init__(self, blocks: list[list[int]], separator: int, k: int) -> None:
        stream = [token for block in blocks for token in block]
        mask = goldfish_mask(stream, separator, k)
        self.blocks = blocks
        self.labels = []
        offset = 0
        for block in blocks:
            drop = mask[offset : offset + len(block)]
            self.labels.append([IGNORED if d else t for t, d in zip(block, drop, strict=True)])
            offset += len(block)
        self.dropped = sum(mask)
        self.tokens = len(stream)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.labels[i]}
