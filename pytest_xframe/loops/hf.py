"""The graphs of a transformers generation loop, and every use of transformers' cache API in one place.

Checked against transformers 5.25 (``CHECKED_WITH``); the 4.x spellings are kept where 5.x renamed
them. What 5.x changed and this module relies on:

* ``forward(cache=...)`` and ``output.cache`` replace ``past_key_values`` (still accepted, with a
  deprecation warning, by the encoder-decoders);
* ``DynamicCache(pairs)`` builds a cache from ``(key, value)`` per layer, and a cache's
  ``layers[i].keys`` / ``.values`` hold them (4.x: ``key_cache[i]`` / ``value_cache[i]``);
* ``EncoderDecoderCache(self_cache, cross_cache)`` marks a layer's cross-attention as computed
  when its cache holds keys, so a decode step reuses them instead of projecting the encoder
  output again.

Each graph is a module whose ``forward`` takes flat named tensors (the cache as ``past_<i>_key``,
``past_<i>_value``; the cross-attention cache as ``cross_<i>_...``), rebuilds the cache object,
calls the user's model and returns the last position's logits and the new cache, flat again. The
module's ``forward`` signature names every input, so the exporters name the ONNX inputs after them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..identity import source_revision

CHECKED_WITH = "5.25.0"
#: part of every graph class's name: a change to this module is a new export (``export_key``'s entries too)
REVISION = source_revision(Path(__file__))[:8]


def cache_argument(model: Any) -> str | None:
    """The keyword ``forward`` takes the cache by: ``cache`` (5.x), ``past_key_values`` (4.x), or None."""
    params = inspect.signature(model.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def returned_cache(output: Any) -> Any:
    """The cache a forward returned (5.x ``cache``, 4.x ``past_key_values``), or None."""
    found = getattr(output, "cache", None)
    return found if found is not None else getattr(output, "past_key_values", None)


def cache_pairs(cache: Any) -> list[tuple[Any, Any]]:
    """(key, value) per layer of a DynamicCache; TypeError for a cache of another layout."""
    layers = getattr(cache, "layers", None)
    if layers is not None and all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        return [(layer.keys, layer.values) for layer in layers]
    if hasattr(cache, "key_cache"):  # transformers 4.x
        return list(zip(cache.key_cache, cache.value_cache))
    raise TypeError(f"a {type(cache).__name__} holds no (key, value) per layer")


def dynamic_cache(pairs: list[tuple[Any, Any]] | None) -> Any:
    """A DynamicCache holding ``pairs`` (empty for None)."""
    from transformers import DynamicCache

    return DynamicCache(pairs) if pairs else DynamicCache()


def encoder_decoder_cache(own: list[tuple[Any, Any]] | None, cross: list[tuple[Any, Any]] | None) -> Any:
    from transformers import EncoderDecoderCache

    return EncoderDecoderCache(dynamic_cache(own), dynamic_cache(cross))


def flat(prefix: str, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """``{prefix_0_key: k0, prefix_0_value: v0, ...}``."""
    return {f"{prefix}_{i}_{kind}": t for i, pair in enumerate(pairs) for kind, t in zip(("key", "value"), pair)}


def pairs_of(prefix: str, feeds: Mapping[str, Any], layers: int) -> list[tuple[Any, Any]]:
    return [(feeds[f"{prefix}_{i}_key"], feeds[f"{prefix}_{i}_value"]) for i in range(layers)]


def names(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}_{i}_{kind}" for i in range(layers) for kind in ("key", "value")]


def graph_module(model: Any, kind: str, inputs: list[str], call: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> Any:
    """A module running ``call(model, feeds)`` whose ``forward`` names ``inputs`` (positional)."""
    import torch

    def forward(self: Any, *args: Any) -> dict[str, Any]:
        return call(self.model, dict(zip(inputs, args)))

    forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in inputs]
    )
    cls = type(f"{kind}Graph_{REVISION}", (torch.nn.Module,), {"forward": forward, "__module__": __name__})
    module = cls()
    module.model = model
    return module


def decoder_call(cache_arg: str, layers: int, with_past: bool, positions: bool) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """A causal LM's step: prefill (``with_past`` False) or decode-with-past."""

    def call(model: Any, f: dict[str, Any]) -> dict[str, Any]:
        cache = dynamic_cache(pairs_of("past", f, layers) if with_past else None)
        extra = {"position_ids": f["position_ids"]} if positions else {}
        out = model(input_ids=f["input_ids"], attention_mask=f["attention_mask"], use_cache=True, **{cache_arg: cache}, **extra)
        return {"logits": out.logits[:, -1, :], **flat("present", cache_pairs(returned_cache(out)))}

    return call


def encoder_call(model: Any, f: dict[str, Any]) -> dict[str, Any]:
    return {"encoder_hidden_states": model.get_encoder()(input_ids=f["input_ids"], attention_mask=f["attention_mask"]).last_hidden_state}


def seq2seq_call(cache_arg: str, layers: int, with_past: bool) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """An encoder-decoder's decoder step: decoder-init (returns the cross-attention cache too) or
    decode-with-past (takes it back, unchanged)."""

    def call(model: Any, f: dict[str, Any]) -> dict[str, Any]:
        cache = encoder_decoder_cache(pairs_of("past", f, layers), pairs_of("cross", f, layers)) if with_past else encoder_decoder_cache(None, None)
        out = model(
            encoder_outputs=(f["encoder_hidden_states"],), attention_mask=f["attention_mask"], decoder_input_ids=f["decoder_input_ids"],
            use_cache=True, **{cache_arg: cache},
        )
        returned = returned_cache(out)
        outputs = {"logits": out.logits[:, -1, :], **flat("present", cache_pairs(returned.self_attention_cache))}
        if not with_past:
            outputs.update(flat("cross", cache_pairs(returned.cross_attention_cache)))
        return outputs

    return call
