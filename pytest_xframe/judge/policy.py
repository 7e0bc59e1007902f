"""Judging policies: which tolerances and metric thresholds decide pass or fail, per backend and output.

A policy is a table of thresholds, the same shape wherever it is written (``[tool.xframe.policy]``
in pyproject.toml, ``policy=`` in the marker or in ``check()``)::

    {"cosine": 0.999,                                          # every backend, every output
     "outputs": {"logits": {"topk": {"k": 1, "min_agreement": 0.99}}},   # outputs by name (globs)
     "backends": {"tflite-*": {"snr_db": 30,                   # backends by id (fnmatch globs)
                               "outputs": {"logits": {"cosine": 0.99}}}}}   # backend, then output

At any scope, a ``data`` table sets thresholds over the samples of ``data=`` (``data_policy.py``):
``{"backends": {"*int8*": {"data": {"snr_db": {"p50": 25}, "top1_agreement": 0.98}}}}``.

Resolution per key, lowest first: the defaults of the backend's precision (``PRECISION_DEFAULTS``,
with the dtype tolerances of ``DEFAULT_TOLERANCES``; with data, a reduced-precision
target's are ``data_policy.DATA_DEFAULTS`` instead of its per-example floors) < project < marker < ``check()``;
within one layer top-level < ``backends`` < ``outputs`` < ``backends.*.outputs``, and among globs
of one kind the later-written one wins. A higher layer wins over a more specific entry of a lower one.

Pure Python (no numpy): the project's table is read and validated at pytest start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ..errors import SpecError, did_you_mean
from .data_policy import DATA_DEFAULTS, DataThresholds, parse_data_policy

#: threshold keys a policy table may set, and what each means (for messages and the docs)
THRESHOLD_KEYS: dict[str, str] = {
    "atol": "absolute tolerance (>= 0)",
    "rtol": "relative tolerance (>= 0)",
    "max_mismatch": "largest share of elements allowed outside atol/rtol in any example (0..1)",
    "cosine": "smallest cosine similarity allowed in any example (-1..1)",
    "snr_db": "smallest signal-to-noise ratio in dB allowed in any example",
    "topk": "{k = int >= 1, min_agreement = 0..1}: share of rows whose top-k indices agree, over all examples",
    # generation loops (``pytest_xframe.loops``): the output a greedy token is chosen from
    "tie_margin": "generation: largest top-2 margin of torch's logits at which a backend choosing another token is a near-tie, not a failure (>= 0)",
    "token_agreement": "generation: smallest share of greedy tokens agreeing with torch's in any example, judged over its steps (0..1)",
}
SCOPE_KEYS = ("backends", "outputs")
#: thresholds over the samples of ``data=`` (``data_policy.py``), at any scope
DATA_KEY = "data"

#: (atol, rtol) by output dtype when the user gives none; integer and bool outputs compare exactly
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-6),
    "float32": (1e-5, 1e-4),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
}

#: Defaults by the target's precision (``Backend.precision``): the one table to tune.
#: fp32 keeps the dtype tolerances (``DEFAULT_TOLERANCES``) and allclose (no element out).
#: Reduced-precision targets are judged by metrics only; their elementwise figures are still shown.
#: Measured (docs/policies.md): fp16 targets reach 48-77 dB on the coverage models, int8 ones
#: 21-59 dB where the quantization works and 4-12 dB where it does not (a small difference of large
#: terms, a mean calibrated at one length). cosine >= 0.9999 is about 37 dB of SNR for an
#: uncorrelated error, 0.99 about 17 dB.
PRECISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "fp32": {"max_mismatch": 0.0},
    "fp16": {"cosine": 0.9999, "snr_db": 40.0},
    "int8": {"cosine": 0.99, "snr_db": 15.0},
}


#: (precision, output dtype) whose default atol grows with the output: at least rtol x the
#: reference's RMS on each example. float32 rounding in another summation order grows with the
#: output's magnitude (measured on a zoo of vision models: the largest error is 1e-7 to 9e-6 of
#: the RMS), so a fixed atol of 1e-5 fails outputs of magnitude ~10 and more on rounding alone
#: and judges outputs far below 1e-5 not at all (docs/random-weights.md has the figures).
SCALED_ATOL = {("fp32", "float32")}


@dataclass(frozen=True)
class Rule:
    """One entry of a policy table: thresholds for the backends and outputs its globs match
    (None matches all)."""

    backend: str | None
    output: str | None
    values: tuple[tuple[str, Any], ...]
    #: where it was written, for messages: '[tool.xframe.policy] outputs."x"'
    where: str = ""
    #: written project-wide (pyproject.toml): its output globs may name another model's outputs
    shared: bool = False

    @property
    def specificity(self) -> int:
        return (self.backend is not None) + 2 * (self.output is not None)


#: a policy layer: the rules one place wrote (project, marker or check())
Layer = tuple[Rule, ...]


@dataclass(frozen=True)
class TopK:
    k: int = 1
    min_agreement: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """The policy in force for one backend x output. None = not judged (the figure is still shown)."""

    atol: float
    rtol: float
    max_mismatch: float | None = 0.0
    cosine: float | None = None
    snr_db: float | None = None
    topk: TopK | None = None
    #: the atol in force on an example grows to this times the reference output's RMS (the fp32
    #: default: ``rtol``, so float32 rounding, which grows with the output's magnitude, fits);
    #: None where the atol is fixed (any atol the user sets)
    atol_scale: float | None = None
    #: thresholds over the samples of ``data=`` (``data_policy.DataThresholds``), judged once they ran
    data: DataThresholds = field(default_factory=DataThresholds)
    #: generation loops only (``pytest_xframe.loops``); None elsewhere
    tie_margin: float | None = None
    token_agreement: float | None = None

    @property
    def topk_k(self) -> int:
        return self.topk.k if self.topk is not None else 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """The inverse of ``to_dict`` (a kept case's policy, for replay)."""
        topk = data.get("topk")
        return cls(
            atol=float(data["atol"]), rtol=float(data["rtol"]), max_mismatch=data.get("max_mismatch"), cosine=data.get("cosine"),
            snr_db=data.get("snr_db"), topk=None if topk is None else TopK(int(topk["k"]), topk.get("min_agreement")),
            atol_scale=data.get("atol_scale"),
            data=DataThresholds.from_dict(data.get("data") or {}),
            tie_margin=data.get("tie_margin"), token_agreement=data.get("token_agreement"),
        )

    def to_dict(self) -> dict[str, Any]:
        generation = {k: v for k, v in (("tie_margin", self.tie_margin), ("token_agreement", self.token_agreement)) if v is not None}
        out = {
            "atol": self.atol, "rtol": self.rtol, "max_mismatch": self.max_mismatch, "cosine": self.cosine,
            "snr_db": self.snr_db,
            "topk": None if self.topk is None else {"k": self.topk.k, "min_agreement": self.topk.min_agreement},
            "atol_scale": self.atol_scale,
            **generation,
        }
        return {**out, "data": self.data.to_dict()} if self.data else out


# -- parsing -----------------------------------------------------------------------------------
def parse_policy(table: Any, where: str, shared: bool = False) -> Layer:
    """A policy table (see the module docstring) as rules; SpecError for unknown keys or bad values.
    ``shared``: the project's table, whose output globs may name outputs of other models."""
    rules = tuple(_rules(table, where, backend=None, output=None))
    return tuple(Rule(r.backend, r.output, r.values, r.where, shared=True) for r in rules) if shared else rules


def _rules(table: Any, where: str, backend: str | None, output: str | None) -> Iterable[Rule]:
    if not isinstance(table, Mapping):
        raise SpecError(f"policy in {where} must be a table (dict), got {type(table).__name__}: {table!r}")
    allowed = set(THRESHOLD_KEYS) | {DATA_KEY} | ({"outputs"} if output is None else set()) | ({"backends"} if backend is None and output is None else set())
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(
            f"unknown policy key(s) {', '.join(map(repr, unknown))} in {where}" + did_you_mean(unknown[0], allowed),
            hint="valid keys: " + ", ".join(k if k != "topk" else "topk = {k, min_agreement}" for k in THRESHOLD_KEYS)
            + f"; {DATA_KEY} = {{thresholds over the data set}}"
            + ("; scopes: backends.<glob>, outputs.<glob>" if backend is None and output is None else "; scope: outputs.<glob>" if output is None else ""),
        )
    values = tuple((k, _threshold(k, table[k], where)) for k in THRESHOLD_KEYS if k in table)
    if DATA_KEY in table:
        values += parse_data_policy(table[DATA_KEY], where)
    if values:
        yield Rule(backend, output, values, where)
    for scope in SCOPE_KEYS:
        if scope not in table:
            continue
        entries = table[scope]
        if not isinstance(entries, Mapping) or not entries:
            raise SpecError(f"policy {scope!r} in {where} must be a non-empty table of <glob> = {{thresholds}}, got {entries!r}")
        for glob, sub in entries.items():
            if not isinstance(glob, str) or not glob:
                raise SpecError(f"policy {scope} key in {where} must be a non-empty name or glob, got {glob!r}")
            inner = f'{where} {scope}."{glob}"'
            if scope == "backends":
                yield from _rules(sub, inner, backend=glob, output=None)
            else:
                yield from _rules(sub, inner, backend=backend, output=glob)


def _threshold(key: str, value: Any, where: str) -> Any:
    if key == "topk":
        return _topk(value, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SpecError(f"policy {key} must be a number, got {value!r} in {where}", hint=f"{key}: {THRESHOLD_KEYS[key]}")
    value = float(value)
    bounds = {"atol": (0.0, math.inf), "rtol": (0.0, math.inf), "max_mismatch": (0.0, 1.0), "cosine": (-1.0, 1.0), "snr_db": (-math.inf, math.inf),
              "tie_margin": (0.0, math.inf), "token_agreement": (0.0, 1.0)}[key]
    if not bounds[0] <= value <= bounds[1] or (key == "snr_db" and math.isinf(value)):
        raise SpecError(f"policy {key} out of range: {value!r} in {where}", hint=f"{key}: {THRESHOLD_KEYS[key]}")
    return value


def _topk(value: Any, where: str) -> TopK:
    if not isinstance(value, Mapping) or set(value) - {"k", "min_agreement"}:
        raise SpecError(f"policy topk must be a table {{k = int, min_agreement = 0..1}}, got {value!r} in {where}")
    k = value.get("k", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError(f"policy topk.k must be an int >= 1, got {k!r} in {where}")
    agreement = value.get("min_agreement")
    if agreement is not None and (isinstance(agreement, bool) or not isinstance(agreement, (int, float)) or not 0.0 <= agreement <= 1.0):
        raise SpecError(f"policy topk.min_agreement must be a number in 0..1, got {agreement!r} in {where}")
    return TopK(k, None if agreement is None else float(agreement))


# -- resolution --------------------------------------------------------------------------------
def resolve(
    layers: Iterable[Layer], backend: str, output: str, dtype: str, precision: str, dtype_tolerance: tuple[float, float] | None,
    default_atol: bool = False,
    over_data: bool = False,
) -> Thresholds:
    """The thresholds for one backend x output (rules: see the module docstring).

    ``over_data``: the check has ``data=``; a reduced-precision target's defaults are then those
    over the data set (``data_policy.DATA_DEFAULTS``) instead of its per-example floors.

    ``dtype_tolerance`` is the output dtype's (atol, rtol), None for integer and bool outputs (exact).
    A user's atol or rtol always judges: where the precision's defaults leave ``max_mismatch``
    unset, setting either makes it 0 (allclose) unless the policy sets ``max_mismatch`` too.
    ``default_atol``: the atol is the dtype's default (no option set it). For a float32 output of
    an fp32 target it then scales with the output (``Thresholds.atol_scale``, :data:`SCALED_ATOL`)
    unless a policy rule sets ``atol``.
    """
    exact = dtype_tolerance is None
    atol, rtol = dtype_tolerance or (0.0, 0.0)
    chosen: dict[str, Any] = {"atol": atol, "rtol": rtol, **_defaults(precision, over_data)}
    if exact:
        chosen["max_mismatch"] = 0.0  # integer and bool outputs compare exactly on every target
    user_tolerance = user_atol = False
    for layer in layers:
        for rule in sorted(layer, key=lambda r: r.specificity):  # stable: written order within a kind
            if _matches(rule, backend, output):
                chosen.update(rule.values)
                user_tolerance |= any(k in ("atol", "rtol") for k, _ in rule.values)
                user_atol |= any(k == "atol" for k, _ in rule.values)
    if user_tolerance and chosen.get("max_mismatch") is None:
        chosen["max_mismatch"] = 0.0
    scaled = default_atol and not user_atol and (precision, dtype) in SCALED_ATOL
    return Thresholds(
        atol=chosen["atol"], rtol=chosen["rtol"], max_mismatch=chosen.get("max_mismatch"), cosine=chosen.get("cosine"),
        snr_db=chosen.get("snr_db"), topk=chosen.get("topk"), atol_scale=chosen["rtol"] if scaled else None,
        data=DataThresholds.from_values(chosen),
        tie_margin=chosen.get("tie_margin"), token_agreement=chosen.get("token_agreement"),
    )


def _defaults(precision: str, over_data: bool) -> dict[str, Any]:
    """The precision's defaults; with data, a reduced-precision target's are judged over it."""
    per_example = PRECISION_DEFAULTS.get(precision, PRECISION_DEFAULTS["fp32"])
    if not over_data or precision not in DATA_DEFAULTS or not DATA_DEFAULTS[precision]:
        return dict(per_example)
    return {**{k: v for k, v in per_example.items() if k not in ("cosine", "snr_db")}, **DATA_DEFAULTS[precision]}


def _matches(rule: Rule, backend: str, output: str) -> bool:
    return (rule.backend is None or fnmatchcase(backend, rule.backend)) and (rule.output is None or fnmatchcase(output, rule.output))


def check_names(layers: Iterable[Layer], outputs: Iterable[str], backend_ids: Iterable[str], model: str) -> None:
    """SpecError for a rule whose output glob matches none of the model's outputs, or whose backend
    glob matches no known backend. The project's rules (``shared``) are checked for backends only:
    an output named there may belong to another model of the repo."""
    outputs, backend_ids = tuple(outputs), tuple(backend_ids)
    for layer in layers:
        for rule in layer:
            if rule.backend is not None and not any(fnmatchcase(b, rule.backend) for b in backend_ids):
                raise SpecError(
                    f"policy names backend {rule.backend!r}, which matches no backend ({rule.where})",
                    model=model, hint=f"known backends: {', '.join(backend_ids)}",
                )
            if not rule.shared and rule.output is not None and not any(fnmatchcase(o, rule.output) for o in outputs):
                raise SpecError(
                    f"policy names output {rule.output!r}, which the model does not have ({rule.where})",
                    model=model, hint=f"the model's outputs: {', '.join(outputs)}",
                )


def unmatched_outputs(layers: Iterable[Layer], outputs: Iterable[str]) -> list[Rule]:
    """The project's rules (``shared``) whose output glob matches none of ``outputs`` (every output
    of every model a session checked): a name that is misspelt, or belongs to no model any more."""
    outputs = tuple(outputs)
    return [r for layer in layers for r in layer if r.shared and r.output is not None and not any(fnmatchcase(o, r.output) for o in outputs)]
