"""Errors raised by pytest-xframe.

Every message is meant to fit on one screen: what was checked (model, backend), the cause in a
line or two, and what to try next. Long framework tracebacks are kept on the exception
(``details``) and in the artifacts, not in the headline.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: what the user's code (``forward``, a model factory, a plugin's backend) may raise that a check
#: reports as a named error: any exception, and ``SystemExit`` and ``GeneratorExit`` (a stray
#: ``sys.exit()`` is a bug in that code, not a request to end the session). ``KeyboardInterrupt``
#: still stops pytest, and pytest's own outcomes (``pytest.skip``, ``pytest.fail``) pass through.
USER_CODE_FAILURES = (Exception, SystemExit, GeneratorExit)


#: terminal colour and cursor codes (torch's exporter colours its messages: ``\x1b[96m``)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape codes: they are noise in a log file, a JSON report or CI."""
    return _ANSI.sub("", text)


def first_line(message: str, limit: int = 300, skip: tuple[str, ...] = ()) -> str:
    """The first non-empty line not starting with ``skip``, capped: framework errors run for pages."""
    message = strip_ansi(message)
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()] or ["(no message)"]
    line = next((ln for ln in lines if not ln.startswith(skip)), lines[0]) if skip else lines[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``TypeName: first line of the message``."""
    return first_line(f"{type(exc).__name__}: {exc}", limit)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'atol'?)`` when one of ``choices`` is close to ``word``, else an empty string."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_with_cause(exc: BaseException, limit: int = 300) -> str:
    """Like :func:`describe_exception`, naming the innermost exception it was raised from too.

    A framework that wraps the real failure (torch.onnx's ``TorchExportError: Failed to export the
    model with torch.export. This is step 1/3...``) says in its first line only which step broke;
    the reason (``GuardOnDataDependentSymNode: Could not guard on data-dependent expression``) is
    the exception it was raised from."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    outer = first_line(f"{type(exc).__name__}: {exc}", limit)
    if root is exc:
        return outer
    outer = outer.split(". ", 1)[0].rstrip(".")  # the step, without the page of next steps that follows
    return first_line(f"{outer}; caused by {type(root).__name__}: {first_line(str(root), limit)}", limit)


def informative_lines(text: str, limit: int = 400) -> str:
    """The lines of a framework error that say what broke, without TensorFlow's boilerplate and stacks."""
    import re

    boring = ("Graph execution error", "Detected at node", "File ", "Traceback", "[[", "Stack trace", "<stack traces", "  ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(boring)]
    lines = [ln for ln in lines if not ln.startswith(boring)] or [text.strip()]
    nodes = re.findall(r"\{\{node ([^}]+)\}\}", text)
    if nodes:
        lines.append(f"at node {nodes[0]}")
    joined = " | ".join(dict.fromkeys(lines))
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


class XframeError(Exception):
    """Base class of every error pytest-xframe raises on purpose."""

    #: an export or conversion failure: the ONNX model the backend had, and its external data files
    #: (kept with the failure's artifacts)
    onnx_path: Path | None = None
    external_data: tuple[Path, ...] = ()
    #: a converted model's crash at run time: the input it crashed on and the converted model
    #: (kept with the ONNX model, so the crash can be run again)
    inputs: Mapping[str, Any] | None = None
    converted_path: Path | None = None

    def __init__(
        self,
        summary: str,
        *,
        model: str | None = None,
        backend: str | None = None,
        cause: str | None = None,
        hint: str | None = None,
        details: str | None = None,
        routes: tuple[tuple[str, int | None], ...] = (),
    ) -> None:
        self.summary = summary
        self.model = model
        self.backend = backend
        self.cause = cause
        self.hint = hint
        self.details = details
        #: (exporter, opset) exports worth trying instead, shown first under "try"; opset None =
        #: the exporter's default. Whoever tried exports removes those it tried (``check``).
        self.routes = routes
        #: one line per export route tried before this error was raised (``failures.route_failure``)
        self.tried: list[str] = []
        #: where the failure's artifacts (ONNX model, full traceback) were kept, once they were
        self.kept: str | None = None
        super().__init__(summary)

    def __copy__(self) -> XframeError:
        # subclasses have their own __init__ signatures: copy the state, do not call __init__
        new = type(self).__new__(type(self), *self.args)
        new.__dict__.update(self.__dict__)
        return new

    def __str__(self) -> str:
        # formatted on demand: callers may add the backend or more cause after raising
        return self._format()

    def _format(self) -> str:
        where = ", ".join(
            part for part in (f"model {self.model}" if self.model else "", f"backend {self.backend}" if self.backend else "") if part
        )
        lines = [f"{self.summary}" + (f" ({where})" if where else "")]
        if self.cause:
            lines.append(f"  cause: {self.cause}")
        if self.tried:
            lines.append("  routes tried, in order:")
            lines.extend(f"    {line}" for line in self.tried)
        advice = "; or ".join(part for part in (routes_text(self.routes), self.hint) if part)
        if advice:
            lines.append(f"  try:   {advice}")
        if self.kept:
            lines.append(f"  kept:  {self.kept}")
        return strip_ansi("\n".join(lines))


def routes_text(routes: tuple[tuple[str, int | None], ...]) -> str:
    """``pass exporter='torchscript', opset=13 (or 17), or exporter='dynamo'`` for (exporter, opset) pairs."""
    by_exporter: dict[str, list[int | None]] = {}
    for exporter, opset in routes:
        by_exporter.setdefault(exporter, []).append(opset)
    parts = []
    for exporter, opsets in by_exporter.items():
        given = [o for o in opsets if o is not None]
        opset = f", opset={given[0]}" + (f" (or {', '.join(map(str, given[1:]))})" if len(given) > 1 else "") if given else ""
        parts.append(f"exporter={exporter!r}{opset}")
    return "pass " + ", or ".join(parts) if parts else ""


class SpecError(XframeError, ValueError):
    """An input spec, option or argument is invalid; raised before anything runs."""


class ExportError(XframeError):
    """torch -> ONNX export failed."""


class ConversionError(XframeError):
    """ONNX -> TensorFlow (or another converter) failed."""

    def __init__(
        self,
        summary: str,
        *,
        op_type: str | None = None,
        op_version: int | None = None,
        node_name: str | None = None,
        **kwargs: object,
    ) -> None:
        self.op_type = op_type
        self.op_version = op_version
        self.node_name = node_name
        super().__init__(summary, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_exception(cls, exc: BaseException, summary: str, *, cause: str | None = None, log: str = "", **kwargs: object) -> ConversionError:
        """A converter's exception as a ConversionError: its traceback (and the converter's own
        ``log``, if any) kept as ``details``; ``cause`` defaults to the exception's first line."""
        details = "".join(traceback.format_exception(exc)) + (f"\n--- {kwargs.get('backend') or 'converter'} output ---\n{log}" if log else "")
        return cls(summary, cause=describe_exception(exc) if cause is None else cause, details=details, **kwargs)  # type: ignore[arg-type]


class TooLargeError(ConversionError):
    """The model's weights are past what the backend's format can hold: no other export of the
    same model would convert, so the exporter fallback stops at the first one."""


class BackendUnavailable(XframeError):
    """A backend's packages are not installed; the test is skipped, naming the extra to install."""


class ParityError(XframeError, AssertionError):
    """Outputs differ beyond tolerance. The message is the full mismatch report; ``mismatches``
    holds what failed on the minimal example, one ``judge.mismatch.Mismatch`` per failing backend
    (empty when the failure is over all the examples, top-k agreement, or drift). Errors are the
    base every layer imports, so the type is named here, not imported."""

    def __init__(self, report_text: str, *, model: str | None = None, backend: str | None = None, mismatches: Sequence[Any] = ()) -> None:
        self.report_text = report_text
        self.mismatches: tuple[Any, ...] = tuple(mismatches)
        super().__init__(report_text.splitlines()[0] if report_text else "", model=model, backend=backend)

    def _format(self) -> str:
        return self.report_text


class DriftError(ParityError):
    """A figure got worse than its baseline by more than the drift factor, though still within
    tolerance: a converter or framework upgrade made the model less accurate."""

    def __init__(self, report_text: str, *, model: str | None = None, backend: str | None = None, drifts: list | None = None) -> None:
        #: per backend, the drifted figures: {"output", "figure", "baseline", "new", "by", "limit"}
        self.drifts = drifts or []
        super().__init__(report_text, model=model, backend=backend)


class NondeterminismError(XframeError, AssertionError):
    """torch itself gave two different outputs for one input: no backend can be judged against it."""


class ResourceError(XframeError):
    """A check ran out of memory (host or device); that check fails, the session goes on."""


class XframeWarning(UserWarning):
    """Base class of pytest-xframe's warnings: the run goes on, something deserves a look."""


class ModelStateWarning(XframeWarning):
    """``forward`` changed the model's own state (buffers, parameters, attributes); restored after the check."""


class StorageWarning(XframeWarning):
    """The cache or artifacts directory could not be used; the run goes on without it."""


class SpecTextError(SpecError):
    """Input text (``x=float32[batch:1..8,20]``) that does not parse: the message shows the text
    with a caret under the offending character."""

    def __init__(self, summary: str, *, text: str, position: int, **kwargs: object) -> None:
        self.text = text
        self.position = position
        super().__init__(summary, **kwargs)  # type: ignore[arg-type]

    def _format(self) -> str:
        head, _, rest = super()._format().partition("\n")
        flat = self.text.replace("\n", " ").replace("\t", " ")  # one character each: the caret stays put
        lines = [head, f"    {flat}", "    " + " " * self.position + "^"]
        return "\n".join(lines + ([rest] if rest else []))


class VacuousCheckWarning(UserWarning):
    """A parity check that cannot fail: a reference output is constant over the drawn inputs, all
    zeros, all NaN, or so small that a backend returning zeros would pass its tolerance.
    ``-W error::pytest_xframe.VacuousCheckWarning`` makes it a failure."""


class DiskFullError(ResourceError):
    """The disk filled up while an export or a conversion was written: that check fails, the
    session goes on, and the cache keeps no partial entry (builds are moved in only when whole)."""


#: what a full disk or an exhausted quota says when a framework's C++ reports it as text
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def disk_full(
    exc: BaseException, directory: object, needed: int, *, doing: str, model: str | None = None, backend: str | None = None
) -> DiskFullError | None:
    """A DiskFullError naming the directory, the bytes needed (about ``needed``) and the bytes
    free, when ``exc`` or an exception it came from is a full disk (``ENOSPC``, ``EDQUOT``, or a
    framework's message saying so); None otherwise."""
    import errno
    import os
    import shutil

    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    hit = next(
        (e for e in seen if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or any(t in str(e) for t in _DISK_FULL_TEXT)),
        None,
    )
    if hit is None:
        return None
    filename = getattr(hit, "filename", None)
    where = os.path.dirname(os.fspath(filename)) if filename else os.fspath(directory)  # type: ignore[arg-type]
    probe = where
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe or ".").free
    return DiskFullError(
        f"the disk filled up while {doing}: {where} needs about {shown_bytes(needed)}, and {shown_bytes(free)} is free there",
        model=model,
        backend=backend,
        cause=_disk_full_cause(hit),
        hint="free space on that disk, or write elsewhere: --xframe-cache-dir for conversions and kept exports, "
        "TMPDIR for the run's working files",
    )


def _disk_full_cause(hit: BaseException) -> str:
    """``TypeName: message``, cut so that the words saying the disk is full stay in (a framework's
    message may start with a long path)."""
    text = str(hit)
    found = next((t for t in _DISK_FULL_TEXT if t in text), None)
    line = next((line for line in text.splitlines() if found and found in line), "")
    if not found:
        return describe_exception(hit)
    start = line.index(found)
    return f"{type(hit).__name__}: {'...' if start > 120 else ''}{line[max(0, start - 120):start + 120]}"


def shown_bytes(n: int) -> str:
    """``1.63 GiB``, ``12.0 MiB``, ``4 KiB``: a size in a message."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


class QuantizationError(XframeError, AssertionError):
    """A quantized target quantized none of the model's weights, under ``strict_quantization``."""


class NothingQuantizedWarning(XframeWarning):
    """A quantized target stores none of the model's weight tensors as integers: it runs the float
    model, so its pass says nothing about quantization. ``strict_quantization`` makes it a failure."""


class VacuousGenerationWarning(VacuousCheckWarning):
    """A generation check whose torch greedy output is degenerate (one token repeated, near-uniform
    logits), as a default-initialised tiny model's is: tokens that agree prove little."""
