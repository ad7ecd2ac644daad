"""Symbol-level tokenizer: one token per task symbol plus four special tokens.

A sequence is ``<bos> prompt <sep> target <eos>``; loss and scoring cover ``target <eos>``, so a
model must also learn where to stop.
"""

from __future__ import annotations

from collections.abc import Sequence

PAD, BOS, SEP, EOS = "<pad>", "<bos>", "<sep>", "<eos>"
SPECIALS = (PAD, BOS, SEP, EOS)


class Tokenizer:
    def __init__(self, symbols: Sequence[str]) -> None:
        clash = set(symbols) & set(SPECIALS)
        if clash:
            raise ValueError(f"task symbols {sorted(clash)} collide with special tokens {list(SPECIALS)}")
        self.vocab: tuple[str, ...] = SPECIALS + tuple(symbols)
        self.index = {s: i for i, s in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.sep_id, self.eos_id = (self.index[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, symbols: Sequence[str]) -> list[int]:
        try:
            return [self.index[s] for s in symbols]
        except KeyError as e:
            raise ValueError(f"symbol {e.args[0]!r} is not in the task vocabulary") from None

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    def encode_pair(self, prompt: Sequence[str], target: Sequence[str]) -> tuple[list[int], int]:
        """Token ids of the whole sequence and the number of prompt tokens (``<bos>..<sep>``)."""
        head = [self.bos_id, *self.encode(prompt), self.sep_id]
        return [*head, *self.encode(target), self.eos_id], len(head)
