"""Parity tests nobody wrote: models declared in pyproject.toml or named on the command line.

Each declaration becomes one test function in a synthetic module, marked ``xframe_parity`` with
the declared options, so pytest's own Python collection parametrizes it per backend and the
``xframe`` fixture runs it: ids, options, reports, artifacts and replay are those of a
hand-written marked test. The factory's module is imported at collection (an import failure is
a collection error naming the factory); the factory itself is called when the test runs.

    [[tool.xframe.models]]
    factory = "pkg.models:make_mlp"          # module:attribute, called with `kwargs` (default none)
    inputs = "x=float32[batch:1..8,20]"      # spec_text grammar
    id = "mlp"                               # test id (default: the option `name`, else the attribute)
    atol = 1e-4                              # any xframe option

A transformers model whose greedy generation is checked (``xframe.check_generation``) gives a
``generation`` table of its arguments instead of ``inputs``::

    [[tool.xframe.models]]
    factory = "pkg.models:tiny_gpt2"
    generation = {max_new_tokens = 8, prompt_length = [1, 6]}
"""

from __future__ import annotations

import importlib
import re
import traceback
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..errors import USER_CODE_FAILURES, SpecError, XframeError
from ..inputs.spec_text import Parsed, parse_inputs
from .options import MARKER, validate

#: the declaration's own keys; every other key is an xframe option
OWN_KEYS = ("factory", "inputs", "id", "kwargs", "generation")
_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ModelDecl:
    """One declared model, validated: a test id, a factory, its inputs and options."""

    id: str
    factory: str
    make: Callable[..., Any] = field(compare=False)
    inputs: Parsed | None = field(compare=False)
    options: dict[str, Any] = field(compare=False)
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False)
    #: check_generation's arguments, for a declaration checked by its greedy generation
    generation: dict[str, Any] | None = field(default=None, compare=False)

    def build(self) -> Any:
        """Call the factory; its own exception is reported as the factory's, with its traceback."""
        __tracebackhide__ = True
        try:
            return self.make(**self.kwargs)
        except USER_CODE_FAILURES as exc:  # whatever the user's factory raises is reported as its failure
            raise SpecError(
                f"model factory {self.factory} raised {type(exc).__name__}: {exc}",
                model=self.id,
                hint="fix the factory; it is called with no arguments unless the declaration has `kwargs`",
                details="".join(traceback.format_exception(exc)),
            ) from None


def load_factory(spec: str, where: str) -> Callable[..., Any]:
    """``pkg.module:attr`` -> the callable; every failure names the factory and the cause."""
    module_name, sep, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not module_name or not attr:
        raise SpecError(f"factory must be 'package.module:function', got {spec!r} in {where}")
    try:
        module = importlib.import_module(module_name)
    except USER_CODE_FAILURES as exc:  # any error of the user's module is a collection error naming it
        raise SpecError(
            f"cannot import the module of model factory {spec} in {where}",
            cause=f"{type(exc).__name__}: {exc}",
            hint="check the module path, and that the package is importable (installed, or on pythonpath)",
            details="".join(traceback.format_exception(exc)),
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SpecError(f"model factory {spec} in {where}: module {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise SpecError(f"model factory {spec} in {where} is not callable ({type(target).__name__})")
    return target


def parse_declaration(raw: Any, where: str) -> ModelDecl:
    """Validate one declaration (a TOML table or the command line's equivalent)."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be a table with factory and inputs, got {type(raw).__name__}")
    missing = [k for k in ("factory", "inputs") if k not in raw and not (k == "inputs" and "generation" in raw)]
    if missing:
        raise SpecError(f"{where} lacks {' and '.join(missing)}",
                        hint='e.g. factory = "pkg.models:make_mlp", inputs = "x=float32[batch:1..8,20]"')
    options = validate({k: v for k, v in raw.items() if k not in OWN_KEYS}, where)
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise SpecError(f"kwargs in {where} must be a table of the factory's keyword arguments, got {kwargs!r}")
    test_id = str(raw.get("id") or options.get("name") or str(raw["factory"]).rpartition(":")[2].rpartition(".")[2])
    if not _ID.fullmatch(test_id):
        raise SpecError(f"model id {test_id!r} in {where} must be letters, digits, '_', '.' or '-'", hint="set `id`")
    generation = _generation(raw, where)
    try:
        inputs = parse_inputs(raw["inputs"]) if generation is None else None
    except SpecError as exc:
        exc.summary = f"inputs of {test_id} in {where}: {exc.summary}"
        raise
    make = load_factory(raw["factory"], where)
    return ModelDecl(test_id, str(raw["factory"]), make, inputs, options, dict(kwargs), generation)


def _generation(raw: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """A declaration's ``generation`` table (check_generation's arguments; their values are
    checked when the test runs), or None; it replaces ``inputs``."""
    if "generation" not in raw:
        return None
    from ..loops.transformers import ARGUMENTS

    table = raw["generation"]
    if "inputs" in raw:
        raise SpecError(f"{where} has both inputs and generation", hint="a generation check draws its own prompts: drop inputs")
    allowed = [a for a in ARGUMENTS if a != "tokenizer"]
    if not isinstance(table, Mapping) or set(table) - set(allowed):
        raise SpecError(f"generation in {where} must be a table of {', '.join(allowed)}, got {table!r}",
                        hint="e.g. generation = {max_new_tokens = 8, prompt_length = [1, 6]}")
    return {k: tuple(v) if isinstance(v, list) and k != "prompts" else v for k, v in table.items()}


def declarations(table: Mapping[str, Any], path: Path) -> list[Any]:
    """The raw ``[[tool.xframe.models]]`` entries; a wrongly typed ``models`` key is an error."""
    models = table.get("models", [])
    if not isinstance(models, list):
        raise SpecError(f"[tool.xframe] models in {path} must be an array of tables ([[tool.xframe.models]]), got {type(models).__name__}")
    return models


def _test_function(decl: ModelDecl) -> Callable[..., None]:
    """The test pytest collects for ``decl``: the marker carries the declared options."""

    def check(xframe: Any) -> None:
        __tracebackhide__ = True
        xframe.calls += 1  # a factory that raises fails this check; it is not a test that forgot to check
        model = decl.build()
        xframe.calls -= 1
        if decl.generation is not None:
            xframe.check_generation(model, **decl.generation)
        else:
            xframe.check(model, decl.inputs)

    check.__name__ = check.__qualname__ = decl.id
    check.__doc__ = f"parity of {decl.factory} on {decl.inputs}" if decl.generation is None else f"greedy generation of {decl.factory}"
    check.pytestmark = [getattr(pytest.mark, MARKER)(**decl.options)]  # type: ignore[attr-defined]
    return check


class DeclaredModels(pytest.Module):
    """pyproject.toml's ``[[tool.xframe.models]]`` (or the command line's model) as a module.

    ``raw`` holds the declarations still to validate, ``ready`` those validated already; a
    declaration that fails is a collection error of its own, and the others still run.
    """

    def __init__(self, *, raw: Sequence[tuple[Any, str]] = (), ready: Sequence[ModelDecl] = (), failure: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw, self.ready, self.failure = list(raw), list(ready), failure

    def _getobj(self) -> types.ModuleType:
        # pytest.Module._getobj imports self.path as Python; here the module is built instead.
        # Private hook of pytest (checked against pytest 9.2).
        module = types.ModuleType(f"xframe_models_{self.name}")
        module.__file__ = str(self.path)
        return module

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        if self.failure:
            raise self.CollectError(self.failure)
        decls = list(self.ready)
        broken: list[pytest.Collector] = []
        for raw, where in self.raw:
            try:
                decls.append(parse_declaration(raw, where))
            except XframeError as exc:
                name = str(raw.get("id") or raw.get("factory")) if isinstance(raw, Mapping) else where
                broken.append(_Broken.from_parent(self, name=name, error=str(exc), declaration=raw))
        seen: set[str] = set()
        for decl in decls:
            if decl.id in seen:
                broken.append(_Broken.from_parent(self, name=decl.id, error=f"two models have the id {decl.id!r}: give each its own `id`"))
                continue
            seen.add(decl.id)
            setattr(self.obj, decl.id, _test_function(decl))
        yield from broken
        yield from super().collect()

    def funcnamefilter(self, name: str) -> bool:
        return True  # every function in this module is a declared model's test, whatever python_functions says

    def classnamefilter(self, name: str) -> bool:
        return False


class _Broken(pytest.Collector):
    """A declaration that did not validate: reported as its own collection error."""

    def __init__(self, *, error: str, declaration: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        #: the raw declaration, for the backends its error record names
        self.declaration = declaration

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        raise self.CollectError(self.error)


def is_broken_declaration(collector: Any) -> bool:
    return isinstance(collector, _Broken)


def declared_backends(collector: Any, known: Sequence[str]) -> tuple[str, ...]:
    """The backends a declaration that failed to collect asked for, when it names valid ones."""
    raw = getattr(collector, "declaration", None)
    if not isinstance(raw, Mapping) or "backends" not in raw:
        return ()
    try:
        return tuple(validate({"backends": raw["backends"]}, "a declaration", known)["backends"])
    except XframeError:
        return ()


def models_file(file_path: Path, parent: pytest.Collector) -> DeclaredModels | None:
    """The collector for the project's pyproject.toml when it declares models, else None."""
    from .project import pyproject_path, tool_table

    config = parent.config
    if pyproject_path(config) != file_path:
        return None
    try:
        table = tool_table(config)
        if "models" not in table:
            return None
        models = declarations(table, file_path)
    except XframeError as exc:
        return DeclaredModels.from_parent(parent, path=file_path, failure=str(exc))
    raw = [(entry, f"[[tool.xframe.models]] #{i + 1} of {file_path.name}") for i, entry in enumerate(models)]
    return DeclaredModels.from_parent(parent, path=file_path, raw=raw)


# -- one model from the command line -----------------------------------------------------------
def cli_declaration(config: pytest.Config) -> ModelDecl | None:
    """``--xframe-model`` with ``--xframe-inputs`` and ``--xframe-model-option``s, validated
    before collection: a mistake is a usage error, not a failing test."""
    factory = config.getoption("xframe_model")
    inputs = config.getoption("xframe_inputs")
    if factory is None:
        if inputs is not None:
            raise pytest.UsageError("--xframe-inputs is given without --xframe-model MODULE:FACTORY")
        return None
    if inputs is None:
        raise pytest.UsageError(f"--xframe-model {factory} needs --xframe-inputs, e.g. --xframe-inputs \"x=float32[batch:1..8,20]\"")
    raw: dict[str, Any] = {"factory": factory, "inputs": inputs}
    for item in config.getoption("xframe_model_option") or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"--xframe-model-option expects KEY=VALUE, got {item!r}")
        raw[key.strip()] = _toml_value(value.strip())
    try:
        return parse_declaration(raw, "--xframe-model")
    except XframeError as exc:
        raise pytest.UsageError(str(exc)) from None


def _toml_value(text: str) -> Any:
    """A TOML value (1e-4, ["onnxruntime"], true, "torchscript"); anything else is a string."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def cli_items(session: pytest.Session, decl: ModelDecl) -> list[pytest.Item]:
    """The command line model's tests, ids ``xframe-model::<id>[<backend>]``, reported as collected."""
    collector = DeclaredModels.from_parent(session, path=Path(session.config.rootpath, "xframe-model"), ready=[decl])
    items = [node for node in collector.collect() if isinstance(node, pytest.Item)]
    session.ihook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, items))
    return items
