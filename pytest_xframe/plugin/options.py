"""Every option of pytest-xframe, declared once, and their precedence, resolved in one place.

``OPTIONS`` is the table: per option its ``check()`` / marker / ``[[tool.xframe.models]]`` key,
command-line flag, ini key, pyproject key, type, default, validation and help. ``register``
(pytest_addoption), ``validate``, the ini and command-line layers (``ini_layer``, ``cli_layer``)
and the option reference of the docs (``docs/hooks.py`` renders it) are generated from it; the check
options' defaults are the fields of ``check.options.CheckOptions`` (re-exported here).

Precedence, lowest to highest: built-in defaults < ini file < marker kwargs < ``check()`` kwargs <
command line. The ini file sets a project's defaults; the command line overrides everything for
one run (``--xframe-max-examples=200`` in a nightly job, say). ``policy`` is the one option whose
layers stack instead of replacing each other (``[tool.xframe.policy]`` at the ini file's place):
``policy.resolve`` weighs them per threshold, backend and output.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from ..backends import BUILTIN
from ..check.options import DEFAULT_DATA_SCALE, DEFAULT_MAX_INPUT_BYTES, CheckOptions
from ..errors import SpecError, did_you_mean
from ..judge.policy import Rule, parse_policy
from ..judge.structured import DetectionRule, parse_detections, parse_sequences

MARKER = "xframe_parity"
EXPORTERS = ("dynamo", "torchscript")

# -- one validator per option: (value, where) -> the value in canonical form, or a SpecError ------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tolerance(name: str) -> Callable[[Any, str], Any]:
    def check(value: Any, where: str) -> float | None:
        if value is None:
            return None
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise SpecError(f"{name} must be a finite number >= 0, got {value!r} in {where}")
        return float(value)

    return check


def _int_at_least(name: str, low: int, hint: str | None = None, optional: bool = False) -> Callable[[Any, str], Any]:
    def check(value: Any, where: str) -> int | None:
        if value is None and optional:
            return None
        if not (_is_int(value) and value >= low):
            raise SpecError(f"{name} must be an int >= {low}, got {value!r} in {where}", hint=hint)
        return value

    return check


def _seed(value: Any, where: str) -> int | None:
    if value is not None and not _is_int(value):
        raise SpecError(f"seed must be an int, got {value!r} in {where}")
    return value


def _exporter(value: Any, where: str) -> str | None:
    if value is not None and value not in EXPORTERS:
        raise SpecError(f"unknown exporter {value!r} in {where}", hint=f"use one of: {', '.join(EXPORTERS)}")
    return value


def _flag(name: str) -> Callable[[Any, str], bool]:
    def check(value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise SpecError(f"{name} must be True or False, got {value!r} in {where}")
        return value

    return check


def _name(value: Any, where: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SpecError(f"name must be a non-empty string, got {value!r} in {where}")
    return value


def _calibration(value: Any, where: str) -> tuple[Any, ...] | None:
    """Samples are checked against the input spec later (``inputs.calibration``)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise SpecError(
            f"calibration must be an iterable of samples, got {type(value).__name__} in {where}",
            hint="e.g. calibration=[{'x': array}, ...] or a list of tuples in input order",
        )
    return tuple(value)  # a generator is read once, here


def _export_key(value: Any, where: str) -> str | tuple[str, ...] | None:
    """A non-empty version string, or a non-empty list of non-empty paths/globs."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise SpecError(
        f"export_key must be a version string or a list of file paths/globs, got {value!r} in {where}",
        hint="e.g. export_key='my-model-1.4' or export_key=['src/mymodel/*.py']",
    )


def _drift_factor(value: Any, where: str) -> float:
    if not _is_number(value) or not value > 1:
        raise SpecError(f"drift_factor must be a number > 1, got {value!r} in {where}", hint="e.g. drift_factor=2: a figure may double")
    return float(value)


def _data(value: Any, where: str) -> Any:
    """A path or an iterable, kept as given: it is streamed, never copied here; samples are checked
    against the inputs when the check opens them (``inputs/data/``)."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        if not value.strip():
            raise SpecError(f"data must be a path or an iterable of samples, got an empty string in {where}")
        return value
    if isinstance(value, (bytes, Mapping)) or not (hasattr(value, "__iter__") or (hasattr(value, "__getitem__") and hasattr(value, "__len__"))):
        raise SpecError(
            f"data must be a path or an iterable of samples, got {type(value).__name__} in {where}",
            hint="a directory of .npz files, one stacked .npz, a list of dicts/tuples of arrays, or a torch Dataset",
        )
    return value


def _data_scale(value: Any, where: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise SpecError(f"data_scale must be a finite number >= 0, got {value!r} in {where}",
                        hint=f"explored inputs move each float value by up to data_scale standard deviations (default {DEFAULT_DATA_SCALE})")
    return float(value)


def _detections(value: Any, where: str) -> tuple[DetectionRule, ...]:
    """Idempotent, as ``_policy_layer``: a declared model's rules, passed on to its marker, stay."""
    if value is None:
        return ()
    if isinstance(value, tuple) and all(isinstance(r, DetectionRule) for r in value):
        return value
    return parse_detections(value, where)


def _sequences(value: Any, where: str) -> tuple[tuple[str, float | None], ...]:
    if value is None:
        return ()
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return value
    return parse_sequences(value, where)


def _keep(value: Any, where: str) -> Any:
    return value


# -- text as the command line and the ini file give it -----------------------------------------
def _arg(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``convert``'s ValueError becomes the usage error argparse prints."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__
    return parse


def _int_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _positive_int_text(text: str) -> int:
    number = _int_text(text)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {number}")
    return number


def _drift_factor_text(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected a number > 1, got {text!r}") from None
    if not number > 1:
        raise ValueError(f"expected a number > 1, got {text!r}")
    return number


def _threads_text(text: str) -> str:
    from ..check.threads import parse

    try:
        return str(parse(text))
    except ValueError:
        raise ValueError(f"expected 'auto', 0 or a thread count, got {text!r}") from None


def export_key_arg(text: str) -> str | tuple[str, ...]:
    """``--xframe-export-key``: a version string, or ``@a,b`` for paths/globs whose contents are
    hashed (the command line's spelling of check()'s string and list); ValueError when empty."""
    if text.startswith("@"):
        files = tuple(p.strip() for p in text[1:].split(",") if p.strip())
        if not files:
            raise ValueError(f"expected paths/globs after '@', got {text!r} (e.g. @src/mymodel/*.py,configs/model.yaml)")
        return files
    if not text.strip():
        raise ValueError("expected a version string (e.g. my-model-1.4) or @paths/globs, got an empty string")
    return text


def _ini_int(raw: Any, key: str) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SpecError(f"ini option {key} must be an integer, got {str(raw).strip()!r}") from None


def _ini_drift_factor(raw: Any, key: str) -> float:
    try:
        return float(str(raw).strip())
    except ValueError:
        raise SpecError(f"ini option {key} must be a number > 1, got {str(raw).strip()!r}") from None


def _ini_list(raw: Any, key: str) -> list[str]:
    return [b for item in raw for b in str(item).split(",") if b]


# -- the table ---------------------------------------------------------------------------------
#: where a check option may be given besides the command line and the ini file
CHECK_PLACES = ("check()", "@pytest.mark.xframe_parity", "[[tool.xframe.models]]")


@dataclass(frozen=True)
class Option:
    """One option. ``name`` is its ``check()`` keyword and ``CheckOptions`` field for a check
    option (``check=True``), else the session setting's name."""

    name: str
    help: str
    check: bool = True
    #: the command line's flag, its argparse type (or action) and metavar
    flag: str | None = None
    cli_type: Callable[[str], Any] | None = None
    action: str | None = None
    metavar: str | None = None
    #: the ini key, its pytest ini type and how its text becomes the option's value
    ini: str | None = None
    ini_type: str = "string"
    from_ini: Callable[[Any, str], Any] | None = None
    #: a key of a ``[tool.xframe.*]`` table of pyproject.toml that sets it ("baseline.path")
    pyproject: str | None = None
    #: ``(value, where) -> value``: a SpecError naming the option and where it was given
    validate: Callable[[Any, str], Any] = _keep
    #: the default of a session option, as the docs show it (a check option's is its field's)
    session_default: str = ""

    @property
    def default(self) -> Any:
        if not self.check:
            return self.session_default
        field = next(f for f in fields(CheckOptions) if f.name == self.name)
        return None if field.default is MISSING else field.default

    @property
    def dest(self) -> str | None:
        return self.flag[2:].replace("-", "_") if self.flag else None


#: in the order ``pytest --help`` lists them
OPTIONS: tuple[Option, ...] = (
    Option("backends", f"the backends to check (built in: {', '.join(BUILTIN)}; plugins may register more).",
           flag="--xframe-backends", metavar="LIST", ini="xframe_backends", ini_type="args", from_ini=_ini_list),
    Option("atol", "absolute tolerance (default: by output dtype; a float32 output of an fp32 target: max(1e-5, rtol x its RMS)); "
           "a policy's top-level atol.", validate=_tolerance("atol")),
    Option("rtol", "relative tolerance (default: by output dtype); a policy's top-level rtol.", validate=_tolerance("rtol")),
    Option("max_examples", "hypothesis examples per parity check.", flag="--xframe-max-examples", cli_type=_arg(_positive_int_text), metavar="N",
           ini="xframe_max_examples", from_ini=_ini_int, validate=_int_at_least("max_examples", 1)),
    Option("seed", "seed for drawing inputs (see also --hypothesis-seed).", flag="--xframe-seed", cli_type=_arg(_int_text), metavar="SEED",
           ini="xframe_seed", from_ini=_ini_int, validate=_seed),
    Option("artifacts_dir", "where failing cases are kept for replay.", check=False, flag="--xframe-artifacts-dir", metavar="DIR",
           ini="xframe_artifacts_dir", session_default=".pytest_cache/d/xframe-artifacts"),
    Option("report", "write a JSON report of every parity check (schema: docs/reports.md, pytest_xframe.report.REPORT_SCHEMA).", check=False,
           flag="--xframe-report", metavar="PATH"),
    Option("cache_dir", "cache of converted models across runs; --cache-clear empties it.", check=False, flag="--xframe-cache-dir",
           metavar="DIR", session_default=".pytest_cache/d/xframe"),
    Option("no_cache", "convert every model afresh; read and write no cache.", check=False, flag="--xframe-no-cache", action="store_true",
           session_default="False"),
    Option("threads", "CPU threads per framework (torch, TensorFlow, ONNX Runtime): 'auto' gives each pytest-xdist worker "
           "CPUs // workers and leaves a serial run alone; 0 leaves the frameworks' defaults.", check=False, flag="--xframe-threads",
           cli_type=_arg(_threads_text), metavar="auto|N", ini="xframe_threads", session_default="auto"),
    Option("exporter", "the torch -> ONNX exporter, 'dynamo' or 'torchscript' (default: each backend's plan).", validate=_exporter),
    Option("opset", "the ONNX opset, >= 7 (default: the exporter's for each backend).", validate=_int_at_least("opset", 7, optional=True)),
    Option("equal_nan", "NaN in torch and a backend at the same place counts as equal.", validate=_flag("equal_nan")),
    Option("name", "the model's name in messages, reports and the baseline (default: its class name).", validate=_name),
    Option("max_input_bytes", "the largest input one example may draw, all tensors together; a spec that can exceed it is refused "
           "before anything runs.", flag="--xframe-max-input-bytes", cli_type=_arg(_positive_int_text), metavar="BYTES",
           ini="xframe_max_input_bytes", from_ini=_ini_int,
           validate=_int_at_least("max_input_bytes", 1, hint=f"default: {DEFAULT_MAX_INPUT_BYTES}")),
    Option("calibration", "quantized targets: the samples to calibrate on (a list of dicts or tuples in input order); default: "
           "drawn from the input spec.", validate=_calibration),
    Option("calibration_samples", "quantized targets: samples drawn from the spec when calibration is not given.",
           validate=_int_at_least("calibration_samples", 1)),
    Option("calibration_seed", "quantized targets: the seed those samples are drawn with.", validate=_int_at_least("calibration_seed", 0)),
    Option("int8_io", "quantized targets: int8 inputs and outputs (tflite-int8-full).", validate=_flag("int8_io")),
    Option("export_key", "vouch for the models' code so ONNX exports are reused across runs: a version string, or paths/globs "
           "(relative to the rootdir) whose contents are hashed; on the command line @a.py,src/**/*.py (docs/performance.md, export_key).",
           flag="--xframe-export-key", cli_type=_arg(export_key_arg), metavar="VERSION|@FILES",
           ini="xframe_export_key", ini_type="args", from_ini=lambda raw, key: tuple(raw), validate=_export_key),
    Option("baseline_update", "write the error figures of this run's passing checks to the baseline file (keeps other entries, "
           "drops stale ones).", check=False, flag="--xframe-baseline-update", action="store_true", session_default="False"),
    Option("baseline", "the baseline file of error figures (ini: relative to the ini file; pyproject: to pyproject.toml).", check=False,
           flag="--xframe-baseline", metavar="PATH", ini="xframe_baseline", pyproject="baseline.path", session_default="xframe-baseline.json"),
    Option("drift_factor", "fail a check whose error figures got more than this many times worse than its baseline.",
           flag="--xframe-drift-factor", cli_type=_arg(_drift_factor_text), metavar="F", ini="xframe_drift_factor",
           from_ini=_ini_drift_factor, pyproject="baseline.drift_factor", validate=_drift_factor),
    Option("policy", "the judging policy: thresholds per backend and output (tolerances, max_mismatch, cosine, snr_db, topk; "
           "thresholds over data= under a data key).", pyproject="policy"),
    Option("data", "the user's samples: a directory of .npz files (one sample each), one .npz with a leading sample axis, or an "
           "iterable of dicts or tuples of arrays (a list, a torch Dataset), streamed; each runs as an explicit example, hypothesis "
           "explores around them, reduced-precision targets are judged over them (docs/data.md).", validate=_data),
    Option("data_limit", "how many samples of data= run (the first N; default: all).", validate=_int_at_least("data_limit", 1, optional=True)),
    Option("data_scale", "how far hypothesis moves a sample of data=: each float value by up to this many standard deviations of "
           "its input over the data.", validate=_data_scale),
    Option("strict_quantization", "quantized targets: a target that quantized no weight tensor fails (QuantizationError) instead "
           "of warning (NothingQuantizedWarning).", flag="--xframe-strict-quantization", action="store_true",
           ini="xframe_strict_quantization", ini_type="bool", from_ini=lambda raw, key: raw is True,
           validate=_flag("strict_quantization")),
    Option("detections", "detection heads compared as sets: a table binding the boxes, scores and labels outputs by name "
           "(keys: docs' Detection heads), or a list of them.", validate=_detections),
    Option("sequences", "token-id outputs judged by exact-match rate: a list of output names, or {name: smallest matching share}.",
           validate=_sequences),
    Option("model", "check this one model (built by calling FACTORY) instead of collecting tests; needs --xframe-inputs.", check=False,
           flag="--xframe-model", metavar="MODULE:FACTORY"),
    Option("inputs", 'inputs of --xframe-model, e.g. "x=float32[batch:1..8,20]" (grammar: docs/model-repos.md).', check=False,
           flag="--xframe-inputs", metavar="TEXT"),
    Option("model_option", 'an option of --xframe-model (atol=1e-4, exporter="torchscript", ...); repeatable.', check=False,
           flag="--xframe-model-option", action="append", metavar="KEY=VALUE", session_default="[]"),
    Option("lock", "a pip constraints file of the stack the suite passed on: the report header, the summary of a failing run and the "
           "JSON report name the packages whose installed version moved since (ini: relative to the ini file's directory).", check=False,
           flag="--xframe-lock", metavar="PATH", ini="xframe_lock"),
)
BY_NAME = {o.name: o for o in OPTIONS}
OPTION_NAMES = tuple(f.name for f in fields(CheckOptions))
assert set(OPTION_NAMES) == {o.name for o in OPTIONS if o.check}, "every CheckOptions field is in the table, and only those"


def register(parser: Any) -> None:
    """``pytest_addoption``: every flag and ini key of the table."""
    group = parser.getgroup("xframe", "cross-framework parity testing (pytest-xframe)")
    for o in OPTIONS:
        if o.flag:
            kwargs: dict[str, Any] = {"help": o.help.rstrip(".") + ("; overrides markers and check()." if o.check else ".")}
            if o.action:
                kwargs.update(action=o.action, default=[] if o.action == "append" else False)
            else:
                kwargs.update(default=None, metavar=o.metavar, **({"type": o.cli_type} if o.cli_type else {}))
            group.addoption(o.flag, **kwargs)
        if o.ini:
            parser.addini(o.ini, o.help, type=o.ini_type, default={"args": [], "bool": False}.get(o.ini_type, ""))


def cli_layer(config: Any, known: Collection[str]) -> dict[str, Any]:
    """The check options given on the command line, validated (``--xframe-backends=`` with
    nothing is an error, as ``backends=[]`` is)."""
    layer: dict[str, Any] = {}
    for o in OPTIONS:
        value = config.getoption(o.dest) if o.check and o.flag else None
        if value is not None and not (o.action == "store_true" and value is False):
            layer[o.name] = parse_backends(value, o.flag, known) if o.name == "backends" else value
    return layer


def ini_layer(config: Any, known: Collection[str]) -> dict[str, Any]:
    """The check options set in the ini file, validated, each named by its ini key."""
    layer: dict[str, Any] = {}
    for o in OPTIONS:
        if not (o.check and o.ini and o.from_ini):
            continue
        raw = config.getini(o.ini)
        if raw is False or raw in ("", []) or (isinstance(raw, str) and not raw.strip()):
            continue
        value = o.from_ini(raw, o.ini)
        if not value and o.name == "backends":
            continue
        where = f"ini option {o.ini}"
        layer[o.name] = parse_backends(value, where, known) if o.name == "backends" else o.validate(value, where)
    return layer


def validate(options: Mapping[str, Any], where: str, known: Collection[str] | None = None) -> dict[str, Any]:
    """Check names and types of user options; ``where`` says where they came from, ``known`` the
    backends there are (default: the built-ins and entry points; a session passes its registry's)."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise SpecError(
            f"unknown xframe option(s) {', '.join(map(repr, unknown))} in {where}" + did_you_mean(unknown[0], OPTION_NAMES),
            hint=f"valid options: {', '.join(OPTION_NAMES)}",
        )
    out = dict(options)
    for name, value in options.items():
        out[name] = parse_backends(value, where, known) if name == "backends" else BY_NAME[name].validate(value, where)
    _policy_layer(out, where)
    return out


def _policy_layer(out: dict[str, Any], where: str) -> None:
    """``policy=`` as one layer of rules, led by this place's ``atol``/``rtol`` (the same top-level
    thresholds, so a more specific policy entry of the same place beats them). Idempotent: options
    validated before (a declared model's, passed on to its marker) keep their layers."""
    if _parsed(out.get("policy")):
        return
    layer = parse_policy(out["policy"], f"policy= of {where}") if out.get("policy") is not None else ()
    tolerance = tuple((k, out[k]) for k in ("atol", "rtol") if out.get(k) is not None)
    clash = [k for k, _ in tolerance for r in layer if r.backend is None and r.output is None and k in dict(r.values)]
    if clash:
        raise SpecError(f"{', '.join(clash)} given both as an option and in policy= in {where}", hint="set it in one place")
    if tolerance:
        layer = (Rule(None, None, tolerance, where),) + layer
    if "policy" in out or tolerance:
        out["policy"] = (layer,) if layer else ()


def _parsed(policy: Any) -> bool:
    """Whether ``policy`` is already layers of rules (``validate``'s output), not a user's table."""
    return isinstance(policy, tuple) and all(isinstance(layer, tuple) and all(isinstance(r, Rule) for r in layer) for layer in policy)


def parse_backends(value: Any, where: str, known: Collection[str] | None = None) -> tuple[str, ...]:
    """Accept "a,b", ["a", "b"] or ("a",); reject unknown names listing the valid ones."""
    if known is None:
        from ..backends import registry

        known = registry().names()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise SpecError(
            f"unknown backend(s) {', '.join(map(repr, unknown)) or '(none given)'} in {where}",
            hint=f"valid backends: {', '.join(known)}",
        )
    return tuple(dict.fromkeys(items))


def resolve(*layers: Mapping[str, Any]) -> CheckOptions:
    """Apply option layers lowest precedence first; each layer must be validated already."""
    options = CheckOptions()
    for layer in layers:
        if layer:
            # policy layers stack (``policy.resolve`` weighs them); every other option is replaced
            options = replace(options, **{k: options.policy + v if k == "policy" else v for k, v in layer.items()})
    return options
