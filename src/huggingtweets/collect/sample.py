"""The bundled public-domain sample: speakers of "tiny Shakespeare" as accounts."""

from __future__ import annotations

import gzip
from collections import Counter
from functools import cache
from importlib.resources import files

from huggingtweets.collect.registry import Source, register_prefix
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import Account, Collected, Post, check_handle, make_handle

PLATFORM = "sample"
RESOURCE = "tinyshakespeare.txt.gz"


@cache
def speeches() -> tuple[tuple[str, str], ...]:
    """(SPEAKER, speech) pairs; a speech is ``SPEAKER:\\nline\\nline`` between blank lines."""
    raw = files("huggingtweets.collect").joinpath("samples", RESOURCE).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    pairs = []
    for block in text.split("\n\n"):
        head, _, body = block.strip().partition("\n")
        if head.endswith(":") and body.strip():
            pairs.append((head[:-1], body.strip()))
    return tuple(pairs)


def speaker_handle(speaker: str) -> str:
    """ "KING RICHARD III" -> "king_richard_iii", "SENATORS, &C" -> "senators_c"."""
    return make_handle(speaker.lower()) or "speaker"


def speakers() -> Counter:
    """Handle -> number of speeches, for every speaker in the sample."""
    return Counter(speaker_handle(s) for s, _ in speeches())


def read_sample(name: str, handle: str | None = None) -> Collected:
    wanted = speaker_handle(name.strip())
    posts_src = [
        (i, s, body) for i, (s, body) in enumerate(speeches()) if speaker_handle(s) == wanted
    ]
    if not posts_src:
        common = ", ".join(h for h, _ in speakers().most_common(8))
        raise HuggingtweetsError(
            f"no speaker {name!r} in the bundled sample; try one of: {common} "
            "(`huggingtweets samples` lists all)"
        )
    speaker = posts_src[0][1]
    handle = check_handle(wanted if handle is None else handle)
    posts = [
        Post(platform=PLATFORM, id=str(i), author=handle, created_at=None, text=body, lang="en")
        for i, _, body in posts_src
    ]
    account = Account(PLATFORM, handle, display_name=speaker.title())
    return Collected(account, posts)


class SampleSource(Source):
    platform = PLATFORM
    offline = True

    def read(self) -> Collected:
        return read_sample(self.spec.split(":", 1)[1], self.options.handle)


register_prefix(
    "sample:", SampleSource, "sample:SPEAKER (bundled tiny Shakespeare, e.g. sample:romeo)"
)
