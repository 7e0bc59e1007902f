"""``xframe.check_generation``: greedy generation of a transformers model with its KV cache.

A causal LM becomes two graphs, *prefill* (the prompt) and *decode* (one token, with the cache);
an encoder-decoder three, *encoder*, *decoder_init* (the start token; returns the cross-attention
cache) and *decode* (one token, the self-attention cache and the cross-attention cache reused).
Each graph is exported once per model and cached like any export. Generation arguments:

``max_new_tokens``  int, or (low, high) for hypothesis to draw from (default 8)
``prompt_length``   int or (low, high): each prompt's length (default (1, 8))
``batch``           int or (low, high): prompts per case, left-padded to one length (default (1, 3))
``forced``          int or (low, high): tokens fed through the decode graph before the greedy
                    steps (prompt columns, or a decoder prefix), so those start from caches of
                    other lengths (default (0, 2))
``prompts``         prompts run first, as one left-padded batch: token id lists, or text with
                    ``tokenizer``
``tokenizer``       a transformers tokenizer: encodes text prompts, gives the pad id

Every mistake is a ``SpecError`` before anything is exported: a model that is not a transformers
model or keeps no cache, text prompts without a tokenizer, prompts or lengths past the model's
position limit, token ids outside its vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from ..check.preflight import validate_model
from ..errors import SpecError
from ..inputs.spec import Dim, InputSlot, TensorSpec
from . import hf
from .program import Graph, Loop
from .prompts import Bounds, PromptCase, Seq2SeqCase, drive_decoder, drive_seq2seq, left_padded, prompt_cases, seq2seq_cases
from .sides import Trace, drive_torch

#: check_generation's own arguments; every other keyword is a check option
ARGUMENTS = ("max_new_tokens", "prompt_length", "batch", "forced", "prompts", "tokenizer")
DEFAULTS: dict[str, Any] = {"max_new_tokens": 8, "prompt_length": (1, 8), "batch": (1, 3), "forced": (0, 2)}
#: the most tokens one case may generate (each is a run on every backend)
MAX_NEW_TOKENS = 512
#: the largest batch and, for a model without a position limit, the longest sequence a graph declares
MAX_BATCH = 1024
LONGEST = 1 << 16


def split_arguments(arguments: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(generation arguments, check options) from ``check_generation``'s keywords."""
    return {k: v for k, v in arguments.items() if k in ARGUMENTS}, {k: v for k, v in arguments.items() if k not in ARGUMENTS}


def _range(name: str, value: Any, low: int, high: int, model: str) -> tuple[int, int]:
    """An int or a (low, high) pair within [low, high]."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    if not ok or not low <= pair[0] <= pair[1] <= high:
        raise SpecError(f"{name} must be an int or a (low, high) pair within {low}..{high}, got {value!r}", model=model,
                        hint=f"e.g. {name}={DEFAULTS.get(name, 4)!r}")
    return int(pair[0]), int(pair[1])


def _require_generating_model(model: Any, name: str) -> str:
    """The keyword the model takes its cache by; SpecError for anything that cannot generate with one."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        raise SpecError(
            "check_generation needs transformers, which is not installed", model=name,
            hint="pip install 'pytest-xframe[generation]' (or transformers)",
        ) from None
    if not isinstance(model, PreTrainedModel):
        raise SpecError(
            f"check_generation takes a transformers model (PreTrainedModel), got {type(model).__name__}", model=name,
            hint="for another loop, use xframe.check_loop(step, inputs, feedback={'h': 'h_next'})",
        )
    validate_model(model, name)
    argument = hf.cache_argument(model)
    if argument is None or not getattr(model, "can_generate", lambda: False)():
        raise SpecError(
            f"{type(model).__name__} keeps no KV cache: its forward takes no cache (nor past_key_values) or it cannot generate",
            model=name, hint="check_generation needs a causal LM or an encoder-decoder with a cache (e.g. *ForCausalLM, *ForConditionalGeneration)",
        )
    return argument


def _position_limit(config: Any) -> int | None:
    """The longest sequence the model's positions cover (None: relative positions, no limit)."""
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


@dataclass(frozen=True)
class _Model:
    """What the builder reads off the model once."""

    name: str
    cache_arg: str
    vocab: int
    pad: int
    limit: int | None
    seq2seq: bool


def _describe(model: Any, name: str, tokenizer: Any) -> _Model:
    cache_arg = _require_generating_model(model, name)
    config = model.config
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    pad = pad if pad is not None else getattr(config, "pad_token_id", None)
    vocab = int(model.get_input_embeddings().weight.shape[0])
    return _Model(name, cache_arg, vocab, int(pad) if pad is not None and 0 <= int(pad) < vocab else 0, _position_limit(config),
                  bool(getattr(config, "is_encoder_decoder", False)))


def _explicit(prompts: Any, tokenizer: Any, m: _Model, new_tokens: int) -> tuple[Any, ...]:
    """The user's prompts as one case: token ids, or text through the tokenizer."""
    if prompts is None:
        return ()
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise SpecError(f"prompts must be a non-empty list of prompts (texts or token id lists), got {prompts!r}", model=m.name)
    if any(isinstance(p, str) for p in prompts):
        if tokenizer is None:
            raise SpecError("prompts are text but no tokenizer was given", model=m.name,
                            hint="pass tokenizer= (a transformers tokenizer), or give each prompt as a list of token ids")
        prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    ids = [list(p) for p in prompts]
    bad = [t for p in ids for t in p if not (isinstance(t, (int, np.integer)) and 0 <= int(t) < m.vocab)]
    if bad or any(not p for p in ids):
        raise SpecError(f"prompts must be non-empty lists of token ids in 0..{m.vocab - 1}", model=m.name,
                        cause=f"got {bad[:5] or 'an empty prompt'}")
    ids_arr, mask = left_padded(ids, m.pad)
    if m.seq2seq:
        return (Seq2SeqCase(ids_arr, mask, np.zeros((len(ids), 0), np.int64), new_tokens),)
    return (PromptCase(ids_arr, mask, ids_arr.shape[1], new_tokens),)


def _check_limit(m: _Model, longest_prompt: int, new_tokens: int, forced: int) -> None:
    """Prompts and generated tokens within the model's positions."""
    if m.limit is None:
        return
    need = longest_prompt + new_tokens if not m.seq2seq else max(longest_prompt, forced + new_tokens + 1)
    if need > m.limit:
        raise SpecError(
            f"a case may need {need} positions, past the model's limit of {m.limit} (max_position_embeddings)", model=m.name,
            cause=f"longest prompt {longest_prompt}" + (f", {new_tokens} new token(s)" if not m.seq2seq else f", decoder {forced} + {new_tokens} + 1"),
            hint="draw shorter prompts (prompt_length=) or fewer tokens (max_new_tokens=), or give the model more positions",
        )


def generation_loop(model: Any, name: str, *, prompts: Any = None, tokenizer: Any = None, **given: Any) -> Loop:
    """The ``Loop`` of ``xframe.check_generation`` (arguments: see the module docstring)."""
    m = _describe(model, name, tokenizer)
    args = {**DEFAULTS, **given}
    new = _range("max_new_tokens", args["max_new_tokens"], 1, MAX_NEW_TOKENS, name)
    lengths = _range("prompt_length", args["prompt_length"], 1, LONGEST, name)
    bounds = Bounds(_range("batch", args["batch"], 1, MAX_BATCH, name), lengths, new, _range("forced", args["forced"], 0, LONGEST, name), m.vocab, m.pad)
    explicit = _explicit(prompts, tokenizer, m, new[1])
    longest = max([lengths[1], *(c.ids.shape[1] for c in explicit)])
    _check_limit(m, longest, new[1], bounds.forced[1])
    build = _seq2seq if m.seq2seq else _decoder
    return build(model, m, bounds, explicit)


def _with_examples(graphs: tuple[Graph, ...], drive: Any, case: Any, name: str) -> tuple[Graph, ...]:
    """Each graph with its export example: its last run in torch's trace of a small fixed case (a
    batch of 2 with left padding; batch, lengths and cache lengths all different and above 1, so
    the exporter neither specializes a size nor takes two sizes for one)."""
    trace = torch_trace(graphs, drive, case, name)
    last = {run.graph: run.feeds for run in trace.runs}
    return tuple(replace(g, example=last[g.name]) for g in graphs)


def torch_trace(graphs: tuple[Graph, ...], drive: Any, case: Any, name: str) -> Trace:
    """torch's run of the loop on ``case``: each graph's module, the user's model with the cache rebuilt."""
    from ..check.forward import Forward

    forwards = {g.name: Forward(g.module, g.slots, g.positional, name) for g in graphs}
    return drive_torch(drive, case, lambda graph, feeds: forwards[graph].outputs(feeds))


def _spec(shape: tuple[Any, ...], dtype: str = "int64", low: float | None = 0, high: float | None = 1) -> TensorSpec:
    return TensorSpec(shape, dtype, low=low, high=high)


def _cache_slots(prefix: str, layers: int, heads_dims: list[tuple[int, int]], batch: Dim, length: Dim) -> tuple[InputSlot, ...]:
    shapes = [hd for hd in heads_dims for _ in ("key", "value")]
    return tuple(InputSlot(n, _spec((batch, h, length, d), "float32", -1.0, 1.0)) for n, (h, d) in zip(hf.names(prefix, layers), shapes))


def _layout(model: Any, m: _Model, call_inputs: dict[str, Any]) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """(heads, head size) of each layer's self-attention cache and of its cross-attention cache
    (seq2seq), and the hidden size, from one torch call; SpecError for a model without a cache."""
    import torch

    with torch.no_grad():
        out = model(**call_inputs, use_cache=True, **{m.cache_arg: hf.encoder_decoder_cache(None, None) if m.seq2seq else hf.dynamic_cache(None)})
    cache = hf.returned_cache(out)
    try:
        pairs = hf.cache_pairs(cache.self_attention_cache if m.seq2seq else cache)
        cross = hf.cache_pairs(cache.cross_attention_cache) if m.seq2seq else []
    except (TypeError, AttributeError):
        pairs = cross = []
    if not pairs:
        raise SpecError(f"{type(model).__name__} returned no KV cache (got {type(cache).__name__})", model=m.name,
                        hint="check_generation needs a model that returns its cache with use_cache=True (config.use_cache)")
    hidden = getattr(out, "encoder_last_hidden_state", None)
    heads = [(int(k.shape[1]), int(k.shape[-1])) for k, _ in pairs]
    return heads, [(int(k.shape[1]), int(k.shape[-1])) for k, _ in cross], int(hidden.shape[-1]) if hidden is not None else 0


def _dims(m: _Model) -> tuple[Dim, Dim, Dim, Dim]:
    """The graphs' dynamic sizes: batch, prompt length, cache length and mask length. Their ranges
    are the model's (not one check's bounds), so every check of a model shares its exports."""
    longest = m.limit or LONGEST
    return Dim("batch", 1, MAX_BATCH), Dim("sequence", 1, longest), Dim("past", 1, longest), Dim("total", 2, longest + 1)


def _graph(model: Any, name: str, slots: tuple[InputSlot, ...], call: Any) -> Graph:
    kind = "".join(part.capitalize() for part in name.split("_"))
    return Graph(name, hf.graph_module(model, kind, [s.name for s in slots], call), slots)


def _decoder(model: Any, m: _Model, b: Bounds, explicit: tuple[Any, ...]) -> Loop:
    import inspect

    import torch

    positions = "position_ids" in inspect.signature(model.forward).parameters
    layout, _, _ = _layout(model, m, {"input_ids": torch.ones((1, 2), dtype=torch.int64)})
    batch, seq, past, total = _dims(m)
    top = m.vocab - 1
    pos = m.limit - 1 if m.limit else 1 << 16
    head = [("input_ids", (batch, seq), top), ("attention_mask", (batch, seq), 1)] + ([("position_ids", (batch, seq), pos)] if positions else [])
    step = [("input_ids", (batch, 1), top), ("attention_mask", (batch, total), 1)] + ([("position_ids", (batch, 1), pos)] if positions else [])
    prefill_slots = tuple(InputSlot(n, _spec(s, high=h)) for n, s, h in head)
    decode_slots = tuple(InputSlot(n, _spec(s, high=h)) for n, s, h in step) + _cache_slots("past", len(layout), layout, batch, past)
    graphs = (
        _graph(model, "prefill", prefill_slots, hf.decoder_call(m.cache_arg, len(layout), False, positions)),
        _graph(model, "decode", decode_slots, hf.decoder_call(m.cache_arg, len(layout), True, positions)),
    )
    drive = partial(drive_decoder, len(layout), positions)
    ids, mask = left_padded([[1 % m.vocab, 2 % m.vocab], [3 % m.vocab, 4 % m.vocab, 5 % m.vocab]], m.pad)
    graphs = _with_examples(graphs, drive, PromptCase(ids, mask, 3, 3), m.name)
    return Loop(graphs, prompt_cases(b), drive, compared=("logits",), explicit=explicit, generates=True)


def _seq2seq(model: Any, m: _Model, b: Bounds, explicit: tuple[Any, ...]) -> Loop:
    import torch

    start = getattr(model.config, "decoder_start_token_id", None)
    start = int(start) if start is not None else m.pad
    ones = torch.ones((1, 2), dtype=torch.int64)
    layout, cross_layout, hidden = _layout(model, m, {"input_ids": ones, "attention_mask": ones, "decoder_input_ids": ones[:, :1]})
    layers = len(layout)
    batch, seq, past, _ = _dims(m)
    top = m.vocab - 1
    shared = (InputSlot("encoder_hidden_states", _spec((batch, seq, hidden), "float32", -1.0, 1.0)), InputSlot("attention_mask", _spec((batch, seq))))
    enc_slots = (InputSlot("input_ids", _spec((batch, seq), high=top)), InputSlot("attention_mask", _spec((batch, seq))))
    init_slots = (InputSlot("decoder_input_ids", _spec((batch, 1), high=top)), *shared)
    decode_slots = init_slots + _cache_slots("past", layers, layout, batch, past) + _cache_slots("cross", layers, cross_layout, batch, seq)
    graphs = (
        _graph(model, "encoder", enc_slots, hf.encoder_call),
        _graph(model, "decoder_init", init_slots, hf.seq2seq_call(m.cache_arg, layers, False)),
        _graph(model, "decode", decode_slots, hf.seq2seq_call(m.cache_arg, layers, True)),
    )
    drive = partial(drive_seq2seq, layers, start)
    ids, mask = left_padded([[1 % m.vocab, 2 % m.vocab], [3 % m.vocab, 4 % m.vocab, 5 % m.vocab]], m.pad)
    graphs = _with_examples(graphs, drive, Seq2SeqCase(ids, mask, np.zeros((2, 0), np.int64), 5), m.name)
    return Loop(graphs, seq2seq_cases(b), drive, compared=("logits", "encoder_hidden_states"), explicit=explicit, generates=True)
