"""The model under check and what is derived from it once per check (fingerprint, output names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..inputs.spec import InputSlot


@dataclass(frozen=True)
class Subject:
    """The model under check and what is derived from it once per check."""

    model: Any
    #: display name in messages and reports
    name: str
    slots: tuple[InputSlot, ...]
    #: True when ``forward`` takes the inputs positionally in ``slots`` order, else by keyword
    positional: bool
    fingerprint: str
    #: the slots as they key exports and memos (``identity.slots_key``)
    slots_key: tuple
    output_names: tuple[str, ...]
    #: sha256 of the state_dict (``identity.weights_digest``), part of the fingerprint
    weights: str = ""
    #: concrete inputs the export traces with, when the spec's example would not do (``export.to_onnx.export``)
    example: Any = field(default=None, compare=False)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.slots]
