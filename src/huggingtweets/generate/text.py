"""What a person is shown of a sample: its text decoded byte by byte, and the prompt rule.

Decoding. GPT-2's byte-level tokens are bytes, not characters: a sample can end after the
first byte of a three-byte character (its end-of-text, line break or max_length comes
first), and the model can draw a continuation byte where none may stand, or a lead byte
followed by a space. ``tokenizer.decode`` turns each such byte into U+FFFD, which then
shows in the CLI, the JSON, the card, the preview, the share links and the API. So a
byte-level tokenizer's tokens are turned into their bytes here (the tokenizer's own
tokens, ``convert_ids_to_tokens``, mapped back through the byte-level alphabet,
transformers' ``bytes_to_unicode``) and the bytes are decoded as UTF-8 with
``errors="ignore"``: an incomplete character at the end is cut, and a byte that is not
UTF-8 in the middle is dropped.

Drop, not resample: drawing again only the invalid tokens would mean masking, at every
step, the tokens whose bytes cannot follow the ones before — a UTF-8 state per row in
our loop, in the server's batching loop and in ``generate()`` (models sampled by
transformers) alike — and it would change what a seed draws, so ``--as-pipeline`` would
no longer give ``pipeline("text-generation")``'s posts. A byte that is not part of any
character carries nothing a reader can see: dropping it loses no text, keeps every
sampling path as it is, and is one rule wherever a sample is decoded.

U+FFFD that was really written (in the prompt, or learned from the training posts) is
three valid bytes, EF BF BD, and is kept as it is.

Tokenizers that are not byte-level (SentencePiece ...) are decoded by the tokenizer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Characters that end a line: a post is one line (str.splitlines' list, less the
# separators of files and records, which are control characters and refused as such).
LINE_BREAKS = "\n\r\u2028\u2029\x85\x0b\x0c"


def prompt_problem(prompt: str, *, allow_newlines: bool = False) -> str | None:
    """What is wrong with a prompt that passes generate's own checks, or None: one with
    nothing to see (only spaces, newlines, control or format characters such as RTL
    marks is as blank as an empty one), of more than one line (unless
    ``allow_newlines``: whole samples are kept), or with a control character (a NUL...)
    that would come back in every post and its share links. The CLI, the library, the
    API and the web page all ask this one function."""
    if not any(char.isprintable() and not char.isspace() for char in prompt):
        return "needs a visible character (not only spaces, control or format marks)"
    if not allow_newlines and any(char in prompt for char in LINE_BREAKS):
        # The posts come back cut at their first line break: all of them "" or the
        # prompt's first line, never what was asked for.
        return "must be one line: a post ends at its first line break"
    allowed = "\t\n\r" if allow_newlines else "\t"
    controls = [c for c in prompt if unicodedata.category(c) == "Cc" and c not in allowed]
    if controls:
        return f"contains a control character (U+{ord(controls[0]):04X}): remove it"
    return None


def _byte_values(tokenizer) -> dict[str, int] | None:
    """The byte each character of a byte-level tokenizer's tokens stands for, or None
    for a tokenizer that is not byte-level."""
    slow = getattr(tokenizer, "byte_decoder", None)  # transformers' Python GPT-2 tokenizer
    if isinstance(slow, dict):
        return slow
    from tokenizers import decoders

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(getattr(backend, "decoder", None), decoders.ByteLevel):
        return None
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


class PostDecoder:
    """A tokenizer's token ids → text, with no U+FFFD the model invented (see above)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_values = _byte_values(tokenizer)
        self.special = set(tokenizer.all_special_ids)
        self._bytes: dict[int, bytes] = {}  # token id → its bytes, as met

    @property
    def byte_level(self) -> bool:
        return self.byte_values is not None

    def token_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (special tokens left out, as ``skip_special_tokens``)."""
        ids = [int(i) for i in ids]
        missing = list(dict.fromkeys(i for i in ids if i not in self._bytes))
        if missing:
            values = self.byte_values or {}
            tokens = self.tokenizer.convert_ids_to_tokens(missing)
            for i, token in zip(missing, tokens, strict=True):
                # A character outside the alphabet (an added token's text) is itself, as
                # the tokenizers library's ByteLevel decoder reads it.
                self._bytes[i] = (
                    b""
                    if i in self.special or token is None
                    else b"".join(
                        bytes([values[c]]) if c in values else c.encode("utf-8", "replace")
                        for c in token
                    )
                )
        return b"".join(self._bytes[i] for i in ids)

    def decode(self, ids) -> str:
        """``tokenizer.decode(ids, skip_special_tokens=True)``, with an incomplete
        character at the end cut and bytes that are not UTF-8 dropped."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if not self.byte_level:
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        text = self.token_bytes(ids).decode("utf-8", errors="ignore")
        if getattr(self.tokenizer, "clean_up_tokenization_spaces", False):
            text = self.tokenizer.clean_up_tokenization(text)
        return text

    def post(self, prompt: str, prompt_ids, decoded_prompt: str, row, *, first_line: bool) -> str:
        """A sampled row (the prompt's ids, then the continuation's) as the post shown:
        the prompt as given, then the continuation; its first line only with
        ``first_line``; trailing spaces cut. ``decoded_prompt``: ``decode(prompt_ids)``.

        Whole rows are decoded, then the prompt as decoded is cut off: SentencePiece-style
        tokenizers (Llama 2, Phi-3, Gemma) drop the space a continuation starts with when
        it is decoded alone ("My dream is" + "▁lovely" → "My dream islovely")."""
        row = row.tolist() if hasattr(row, "tolist") else list(row)
        whole = self.decode(row)
        if whole.startswith(decoded_prompt):
            text = prompt + whole[len(decoded_prompt) :]
        else:  # a tokenizer that does not decode the prompt back as its start
            text = prompt + self.decode(row[len(prompt_ids) :])
        if first_line:
            text = text.split("\n", 1)[0]
        return text.rstrip()
