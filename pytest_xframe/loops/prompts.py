"""Generation cases (prompt batches with left padding) and the greedy programs that run them.

A causal LM's case: a batch of prompts left-padded to one length with its attention mask, how many
prompt columns the prefill graph takes (the rest go through the decode graph one by one, so the
greedy steps start from caches of many lengths), and how many new tokens to generate. An
encoder-decoder's case: the encoder's prompt batch, a forced decoder prefix (the same role) and
the new tokens. Positions follow the mask as ``generate`` computes them (a pad's position is 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import hf
from .program import Side


@dataclass(frozen=True)
class Bounds:
    """What hypothesis draws generation cases from (inclusive ranges)."""

    batch: tuple[int, int]
    prompt_length: tuple[int, int]
    new_tokens: tuple[int, int]
    #: tokens fed through the decode graph before greedy steps: prompt columns / a decoder prefix
    forced: tuple[int, int]
    #: token ids drawn: 0..vocab-1
    vocab: int
    pad: int


def left_padded(prompts: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The prompts as one left-padded int64 batch and its attention mask."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        if len(prompt):
            ids[row, width - len(prompt):] = prompt
            mask[row, width - len(prompt):] = 1
    return ids, mask


def positions(mask: np.ndarray) -> np.ndarray:
    """Position ids as ``generate`` derives them from a left-padded mask (pads get 1)."""
    pos = np.cumsum(mask, axis=-1) - 1
    return np.where(mask == 0, 1, pos).astype(np.int64)


@dataclass(frozen=True)
class PromptCase:
    """A causal LM's generation case."""

    ids: np.ndarray
    mask: np.ndarray
    prefill: int
    new_tokens: int

    def arrays(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.ids, "attention_mask": self.mask, "prefill": np.array(self.prefill), "new_tokens": np.array(self.new_tokens)}

    def prompt(self, row: int) -> list[int]:
        return self.ids[row, self.ids.shape[1] - int(self.mask[row].sum()):].tolist()

    def describe(self, row: int) -> str:
        pad = self.ids.shape[1] - int(self.mask[row].sum())
        return (f"row {row} of {self.ids.shape[0]}: prompt {self.prompt(row)} (left padding {pad}); prefill of "
                f"{self.prefill} column(s) of {self.ids.shape[1]}, {self.new_tokens} new token(s)")

    def __repr__(self) -> str:
        rows = [self.prompt(r) for r in range(self.ids.shape[0])]
        return f"PromptCase(prompts={rows}, prefill={self.prefill}, new_tokens={self.new_tokens})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis would otherwise print how the case was built


@dataclass(frozen=True)
class Seq2SeqCase:
    """An encoder-decoder's generation case."""

    ids: np.ndarray
    mask: np.ndarray
    #: decoder tokens fed after the start token before greedy steps, [batch, forced]
    prefix: np.ndarray
    new_tokens: int

    def arrays(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.ids, "attention_mask": self.mask, "prefix": self.prefix, "new_tokens": np.array(self.new_tokens)}

    def describe(self, row: int) -> str:
        pad = self.ids.shape[1] - int(self.mask[row].sum())
        return (f"row {row} of {self.ids.shape[0]}: encoder prompt {self.ids[row, pad:].tolist()} (left padding {pad}); "
                f"decoder prefix {self.prefix[row].tolist()}, {self.new_tokens} new token(s)")

    def __repr__(self) -> str:
        rows = [self.ids[r, self.ids.shape[1] - int(self.mask[r].sum()):].tolist() for r in range(self.ids.shape[0])]
        return f"Seq2SeqCase(prompts={rows}, prefix={self.prefix.tolist()}, new_tokens={self.new_tokens})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _prompts(b: Bounds) -> Any:
    """Batches of prompts: the batch size first, then each prompt's length and ids (all shrink)."""
    from hypothesis import strategies as st

    prompt = st.lists(st.integers(0, b.vocab - 1), min_size=b.prompt_length[0], max_size=b.prompt_length[1])
    return st.integers(*b.batch).flatmap(lambda n: st.lists(prompt, min_size=n, max_size=n))


def prompt_cases(b: Bounds) -> Any:
    """``PromptCase``s: prompts, then the prompt columns left to the decode graph (fewest first)."""
    from hypothesis import strategies as st

    def finish(prompts: list[list[int]]) -> Any:
        ids, mask = left_padded(prompts, b.pad)
        most = min(min(len(p) for p in prompts) - 1, b.forced[1])
        return st.builds(
            lambda forced, new: PromptCase(ids, mask, ids.shape[1] - forced, new),
            st.integers(min(b.forced[0], most), most), st.integers(*b.new_tokens),
        )

    return _prompts(b).flatmap(finish)


def seq2seq_cases(b: Bounds) -> Any:
    """``Seq2SeqCase``s: prompts, then a forced decoder prefix of the same length for every row."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    def finish(prompts: list[list[int]]) -> Any:
        ids, mask = left_padded(prompts, b.pad)
        prefix = st.integers(*b.forced).flatmap(lambda n: hnp.arrays(np.int64, (len(prompts), n), elements=st.integers(0, b.vocab - 1)))
        return st.builds(lambda p, new: Seq2SeqCase(ids, mask, p, new), prefix, st.integers(*b.new_tokens))

    return _prompts(b).flatmap(finish)


def _label(graph: str, new: int, total: int, after: str | None) -> str:
    """A run named by what its logits are for: a forced token's successor, or a new token."""
    return f"{graph}: logits after {after}" if after else f"{graph}: logits for new token {new} of {total}"


def _greedy_steps(side: Side, out: dict[str, np.ndarray], forced: np.ndarray, new_tokens: int, feeds: Any, after: Any) -> None:
    """The decode graph's steps: the ``forced`` tokens (one column each), then greedy ones until
    ``new_tokens`` are chosen; ``feeds(step, token, out)`` builds a step's feeds, ``after(i)`` names
    the i-th forced token."""
    batch, count = forced.shape
    new = 0
    for step in range(count + new_tokens):
        if step < count:
            token = forced[:, step:step + 1]
        else:
            token = side.greedy("logits", out["logits"]).reshape(batch, 1).astype(np.int64)
            new += 1
            if new == new_tokens:
                return
        out = side.run("decode", _label("decode", new + 1, new_tokens, after(step + 1) if step + 1 < count else None), feeds(step, token, out))


def drive_decoder(layers: int, feeds_positions: bool, case: PromptCase, side: Side) -> None:
    """Greedy generation of a causal LM: prefill, forced prompt columns, then new tokens."""
    batch, width = case.ids.shape
    mask = np.concatenate([case.mask, np.ones((batch, case.new_tokens), np.int64)], axis=1)
    pos = positions(mask)
    k = case.prefill
    first = {"input_ids": case.ids[:, :k], "attention_mask": mask[:, :k], **({"position_ids": pos[:, :k]} if feeds_positions else {})}
    out = side.run("prefill", _label("prefill", 1, case.new_tokens, f"prompt column {k} of {width}" if k < width else None), first)

    def feeds(step: int, token: np.ndarray, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        column = k + step
        extra = {"position_ids": pos[:, column:column + 1]} if feeds_positions else {}
        return {"input_ids": token, "attention_mask": mask[:, :column + 1], **hf.flat("past", _pairs(out, layers)), **extra}

    _greedy_steps(side, out, case.ids[:, k:], case.new_tokens, feeds, lambda i: f"prompt column {k + i} of {width}")


def _pairs(out: dict[str, np.ndarray], layers: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(out[f"present_{i}_key"], out[f"present_{i}_value"]) for i in range(layers)]


def drive_seq2seq(layers: int, start: int, case: Seq2SeqCase, side: Side) -> None:
    """Greedy generation of an encoder-decoder: encoder, decoder-init (which returns the
    cross-attention cache, reused by every later step), the forced prefix, then new tokens."""
    batch = case.ids.shape[0]
    hidden = side.run("encoder", "encoder", {"input_ids": case.ids, "attention_mask": case.mask})["encoder_hidden_states"]
    shared = {"encoder_hidden_states": hidden, "attention_mask": case.mask}
    forced = case.prefix.shape[1]
    out = side.run("decoder_init", _label("decoder_init", 1, case.new_tokens, "the start token" if forced else None),
                   {"decoder_input_ids": np.full((batch, 1), start, np.int64), **shared})
    cross = {n: out[n] for n in hf.names("cross", layers)}

    def feeds(step: int, token: np.ndarray, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"decoder_input_ids": token, **shared, **hf.flat("past", _pairs(out, layers)), **cross}

    _greedy_steps(side, out, case.prefix, case.new_tokens, feeds, lambda i: f"decoder prefix token {i} of {forced}")
