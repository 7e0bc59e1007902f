"""Input specs written as text, for pyproject.toml and the command line.

Grammar (whitespace is free between tokens)::

    inputs := entry (sep entry)* sep?           sep := ";" | ","   (at top level)
    entry  := [name "="] dtype "[" [dim ("," dim)*] "]" [range]
    dim    := int                               a fixed size
            | name ":" int ".." int             a Dim, e.g. batch:1..8
            | name "[" int ".." int "]"         the same Dim, as TensorSpec.describe() writes it
            | name                              a Dim named earlier in the same text
    range  := "(" number ".." number ")"        low and high of the drawn values

``x=float32[batch:1..8,20]; ids=int64[batch,16](0..999)`` gives ``{"x": TensorSpec((Dim("batch",
1, 8), 20)), "ids": TensorSpec((Dim("batch", 1, 8), 16), "int64", low=0, high=999)}``. Entries are
all named (a dict keyed by ``forward``'s parameter names) or none is (a list in ``forward``'s
order). Errors are ``SpecTextError``: the text with a caret under the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import SpecError, SpecTextError
from .spec import Dim, TensorSpec, _dtype_name

Parsed = dict[str, TensorSpec] | list[TensorSpec]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>\.\.|[\[\](),;=:]))"
)


@dataclass
class _Parser:
    text: str
    pos: int = 0
    dims: dict[str, Dim] = field(default_factory=dict)

    def fail(self, message: str, at: int | None = None, hint: str | None = None) -> SpecTextError:
        return SpecTextError(f"cannot parse input text at character {(self.pos if at is None else at) + 1}: {message}",
                             text=self.text, position=self.pos if at is None else at, hint=hint)

    def peek(self) -> tuple[str, str, int] | None:
        """(kind, token, start) of the next token, without consuming it; None at the end."""
        rest = self.text[self.pos:]
        if not rest.strip():
            return None
        match = _TOKEN.match(self.text, self.pos)
        start = len(rest) - len(rest.lstrip()) + self.pos
        if match is None:
            raise self.fail(f"unexpected character {self.text[start]!r}", at=start)
        kind = match.lastgroup or ""
        return kind, match.group(kind), match.start(kind)

    def take(self, kind: str, expected: str | None = None) -> tuple[str, int]:
        """Consume one token of ``kind`` (and value ``expected``), or fail naming what was wanted."""
        token = self.peek()
        want = repr(expected) if expected else {"name": "a name", "number": "a number", "punct": "a symbol"}[kind]
        if token is None:
            raise self.fail(f"expected {want}, the text ended", at=len(self.text.rstrip()))
        got_kind, value, start = token
        if got_kind != kind or (expected is not None and value != expected):
            raise self.fail(f"expected {want}, got {value!r}", at=start)
        self.pos = start + len(value)
        return value, start

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "punct" and token[1] == value


def parse_inputs(text: str) -> Parsed:
    """Parse an inputs text into TensorSpecs: a dict when the entries are named, else a list."""
    if not isinstance(text, str):
        raise SpecError(f"input text must be a string, got {type(text).__name__}", hint='e.g. "x=float32[batch:1..8,20]"')
    parser = _Parser(text)
    if parser.peek() is None:
        raise parser.fail("no inputs given", at=0, hint='write one entry per forward parameter, e.g. "x=float32[batch:1..8,20]"')
    entries: list[tuple[str | None, int, TensorSpec]] = []
    while parser.peek() is not None:
        entries.append(_entry(parser))
        if parser.peek() is not None:
            token = parser.peek()
            assert token is not None
            if not (parser.at(";") or parser.at(",")):
                raise parser.fail(f"expected ';' or ',' between inputs, got {token[1]!r}", at=token[2])
            parser.take("punct")
    return _assemble(parser, entries)


def _assemble(parser: _Parser, entries: list[tuple[str | None, int, TensorSpec]]) -> Parsed:
    named = [e for e in entries if e[0] is not None]
    if named and len(named) != len(entries):
        first_unnamed = next(start for name, start, _ in entries if name is None)
        raise parser.fail("name every input or none", at=first_unnamed, hint="write name=dtype[dims] for each input")
    if not named:
        return [spec for _, _, spec in entries]
    out: dict[str, TensorSpec] = {}
    for name, start, spec in entries:
        assert name is not None
        if name in out:
            raise parser.fail(f"input {name!r} is given twice", at=start)
        out[name] = spec
    return out


def _entry(parser: _Parser) -> tuple[str | None, int, TensorSpec]:
    """``[name=]dtype[dims](range)``; TensorSpec's own checks are reported at the entry."""
    first, start = parser.take("name")
    name = None
    dtype, dtype_at = first, start
    if parser.at("="):
        parser.take("punct", "=")
        name = first
        dtype, dtype_at = parser.take("name")
    try:

        dtype = _dtype_name(dtype)
    except SpecError:
        raise parser.fail(f"unknown dtype {dtype!r}", at=dtype_at, hint="use a numpy dtype name: float32, float16, int64, bool, ...") from None
    parser.take("punct", "[")
    shape = _dims(parser)
    low = high = None
    if not parser.at("(") and dtype != "bool" and re.fullmatch(r"u?int\d+", dtype):
        raise parser.fail(f"integer input {dtype} needs a value range", at=parser.pos,
                          hint=f"add (low..high) after the shape, e.g. {dtype}[batch,16](0..999) for token ids")
    if parser.at("("):
        parser.take("punct", "(")
        low, high = _number(parser), None
        parser.take("punct", "..")
        high = _number(parser)
        parser.take("punct", ")")
    try:
        return name, start, TensorSpec(shape, dtype, low=low, high=high)
    except SpecError as exc:
        raise parser.fail(exc.summary, at=start, hint=exc.hint) from None


def _dims(parser: _Parser) -> list[int | Dim]:
    shape: list[int | Dim] = []
    if parser.at("]"):
        parser.take("punct", "]")
        return shape
    while True:
        shape.append(_dim(parser))
        if parser.at("]"):
            parser.take("punct", "]")
            return shape
        token = parser.peek()
        if token is None or token[1] != ",":
            raise parser.fail("expected ',' or ']' in the shape" + (f", got {token[1]!r}" if token else ", the text ended"),
                              at=token[2] if token else len(parser.text.rstrip()))
        parser.take("punct", ",")


def _dim(parser: _Parser) -> int | Dim:
    token = parser.peek()
    if token is not None and token[0] == "number":
        return _size(parser)
    name, start = parser.take("name")
    if parser.at(":") or parser.at("["):
        closing = "]" if parser.at("[") else None
        parser.take("punct")
        low = _size(parser)
        parser.take("punct", "..")
        high = _size(parser)
        if closing:
            parser.take("punct", closing)
        try:
            dim = Dim(name, low, high)
        except SpecError as exc:
            raise parser.fail(exc.summary, at=start, hint=exc.hint) from None
        if parser.dims.get(name, dim) != dim:
            old = parser.dims[name]
            raise parser.fail(f"Dim {name!r} was {old.min}..{old.max} earlier, {low}..{high} here", at=start,
                              hint=f"one name is one size across all inputs: write {name!r} alone to reuse it")
        parser.dims[name] = dim
        return dim
    if name not in parser.dims:
        raise parser.fail(f"Dim {name!r} has no range", at=start, hint=f"write {name}:1..8 (its range) where it first appears")
    return parser.dims[name]


def _size(parser: _Parser) -> int:
    value, start = parser.take("number")
    if not re.fullmatch(r"\d+", value):
        raise parser.fail(f"a size must be a whole number >= 0, got {value!r}", at=start)
    return int(value)


def _number(parser: _Parser) -> float:
    value, _ = parser.take("number")
    number = float(value)
    return int(number) if re.fullmatch(r"[-+]?\d+", value) else number
