"""What the frameworks print and log while the plugin drives them, kept out of the user's report.

Exporting, converting and running a model make torch, TensorFlow, onnx-tf and friends write a lot:
torch's exporter dumps whole graphs ("Torch IR graph at exception", ``def forward(self, arg0_1...``)
from C++ straight to file descriptor 1, logs ``torch.__trace`` records by the hundred, TensorFlow
and absl log from C++ to descriptor 2 and through Python's ``logging``. pytest would show all of
it under "Captured stdout / stderr / log" of every test (``-rA``: thousands of lines for a few
tests). :func:`captured` diverts all three channels while a block runs and hands back the text, so
a failure can keep it in its ``details`` (the artifacts' ``error.txt``, ``-v``) and a success can
drop it.

The channels, each restored as it was when the block ends:

* descriptors 1 and 2 (C and C++ writes) -> a temporary file; C's stdio buffers are flushed first;
* ``sys.stdout`` / ``sys.stderr`` (Python writes) -> a string buffer;
* the loggers of :data:`FRAMEWORK_LOGGERS` (and their children that have handlers of their own)
  -> the same buffer, without propagating to the root logger where pytest collects records.
  Handlers a framework adds during the block (TensorFlow's, at its first import) are kept.

The plugin's own warnings (``warnings.warn``) are not touched. Nothing happens at import time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["FRAMEWORK_LOGGERS", "FrameworkOutput", "captured"]

#: top-level logger names of the frameworks the plugin drives (their children are included)
FRAMEWORK_LOGGERS = (
    "torch", "torchao", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "tensorflow", "absl", "keras", "tf_keras", "h5py",
    "onnx_tf", "onnx2tf", "jax", "litert_torch", "ai_edge_litert", "ai_edge_torch", "transformers",
)
_ROOTS = frozenset(FRAMEWORK_LOGGERS)
#: [len(loggerDict) when found, the loggers]: ``_framework_loggers``'s memo
_LOGGERS: list[Any] = []
#: temporary files free for the next block
_SINKS: list[Any] = []
#: [libc's fflush, or None where there is none], once looked up
_LIBC: list[Any] = []


@dataclass
class FrameworkOutput:
    """What the frameworks wrote during a :func:`captured` block (complete once the block ended)."""

    text: str = ""

    def section(self) -> str:
        """The text as a section to append to an error's details; empty when nothing was written."""
        body = self.text.strip()
        return f"\n\n--- what the frameworks printed and logged meanwhile ---\n{body}\n" if body else ""


class _Records(logging.Handler):
    """Formats records into the block's buffer; torch's structured-trace records carry no text."""

    def __init__(self, buffer: io.StringIO) -> None:
        super().__init__(logging.NOTSET)
        self.buffer = buffer
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.getMessage().strip():
                self.buffer.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is dropped, as logging does
            self.handleError(record)


def _framework_loggers() -> list[logging.Logger]:
    """The frameworks' top-level loggers, and their children that have handlers of their own;
    found again only when loggers were created since (a check runs a block per example)."""
    known = logging.root.manager.loggerDict
    if _LOGGERS and _LOGGERS[0] == len(known):
        return _LOGGERS[1]
    loggers = [logging.getLogger(name) for name in FRAMEWORK_LOGGERS]
    children = [
        logger for name, logger in list(known.items())
        if isinstance(logger, logging.Logger) and logger.handlers and "." in name and name.partition(".")[0] in _ROOTS
    ]
    _LOGGERS[:] = [len(known), [*loggers, *children]]
    return _LOGGERS[1]


def _sink() -> Any:
    """A temporary file for the descriptors, from a pool: reused across blocks (one per nesting level)."""
    try:
        sink = _SINKS.pop()
    except IndexError:
        return tempfile.TemporaryFile()
    sink.seek(0)
    sink.truncate()
    return sink


@contextlib.contextmanager
def _loggers_to(handler: logging.Handler) -> Iterator[None]:
    swapped = []
    for logger in _framework_loggers():
        swapped.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    try:
        yield
    finally:
        for logger, handlers, propagate in swapped:
            logger.handlers = handlers + [h for h in logger.handlers if h is not handler and h not in handlers]
            logger.propagate = propagate


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so what C code printed lands where the descriptors point now."""
    if not _LIBC:
        try:
            import ctypes

            _LIBC.append(ctypes.CDLL(None).fflush)
        except Exception:  # noqa: BLE001 - no libc to reach (Windows): C++ streams flush by line there
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](None)


@contextlib.contextmanager
def _descriptors_to(sink: int) -> Iterator[None]:
    """Descriptors 1 and 2 point at ``sink`` within the block; left alone where they cannot be duplicated."""
    saved = []
    try:
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
    except OSError:
        for _, copy in saved:
            os.close(copy)
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_stdio()
    for fd, _ in saved:
        os.dup2(sink, fd)
    try:
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def captured() -> Iterator[FrameworkOutput]:
    """Divert what the frameworks print and log within the block (see the module docstring); the
    yielded object's ``text`` holds it once the block has ended, normally or by an exception."""
    out = FrameworkOutput()
    python = io.StringIO()
    sink = _sink()
    try:
        with _descriptors_to(sink.fileno()), contextlib.redirect_stdout(python), contextlib.redirect_stderr(python), \
                _loggers_to(_Records(python)):
            yield out
    finally:
        sink.seek(0)
        native = sink.read().decode("utf-8", errors="replace")
        _SINKS.append(sink)
        out.text = "\n".join(part.strip("\n") for part in (native, python.getvalue()) if part.strip())
