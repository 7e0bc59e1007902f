"""Per-run state: resolved options, the memo (built on first use), collected results."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..report.ledger import Ledger, placeholder_records, read_running, write_running
from .options import MARKER, CheckOptions, cli_layer, ini_layer, resolve, validate

#: the key of ``worker_input`` in pytest-xdist's ``workerinput``
RUN_DIR_KEY = "xframe_run_dir"

if TYPE_CHECKING:
    import pytest

    from ..backends import Registry
    from ..check.memo import SessionMemo


class XframeSession:
    """Everything pytest-xframe keeps for one pytest run (one per xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[dict[str, Any]] = []
        #: settles the records of checks that never recorded their own (``report.ledger``)
        self.ledger = Ledger(running=self._running_records)
        #: the backends this run knows: built-ins, entry points, and what plugins' hooks registered
        self.backends = self._registry()
        self._memo: SessionMemo | None = None
        self._workdir: Path | None = None
        #: the controller's directory for this run's shared exports (made when xdist starts a worker)
        self._run_dir: Path | None = None
        self._ini = self._ini_options()
        self._cli = self._cli_options()
        self.threads_setting = self._threads_setting()
        from ..judge.baseline import BaselineRun
        from .project import settings_from

        self.baseline = BaselineRun(settings_from(config))
        self.baseline.active  # noqa: B018 - read the file now: a broken one is a usage error, not a failure per test
        self.lock = self._lock()

    def _lock(self) -> tuple[Path, list[Any]] | None:
        """``--xframe-lock`` / ini ``xframe_lock``: the lock's path and what moved since it; an
        unreadable lock is a usage error (a CI job that names one means to compare against it)."""
        from ..lockfile import moved_since, read_lock

        chosen = self.config.getoption("xframe_lock")
        base = Path(self.config.invocation_params.dir)
        if not chosen:
            chosen = str(self.config.getini("xframe_lock")).strip()
            base = Path(self.config.inipath).parent if self.config.inipath else Path(self.config.rootpath)
        if not chosen:
            return None
        path = Path(chosen) if Path(chosen).is_absolute() else base / chosen
        try:
            lock = read_lock(path)
        except OSError as exc:
            import pytest

            raise pytest.UsageError(f"pytest-xframe: cannot read the lock {path}: {exc.strerror or exc}") from None
        return path, moved_since(lock)

    # -- backends and options ----------------------------------------------------------------
    def _registry(self) -> Registry:
        """Built-ins and entry points, plus the ``pytest_xframe_register_backends`` hooks' backends;
        a clash of names or a hook returning something else is a usage error."""
        import pytest

        from ..backends import Registry

        try:
            registry = Registry.default()
            for found in self.config.hook.pytest_xframe_register_backends(config=self.config):
                registry.add(found or (), "a pytest_xframe_register_backends hook")
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"pytest-xframe: {exc}") from None
        return registry

    @property
    def backend_names(self) -> tuple[str, ...]:
        return self.backends.names()

    def _ini_options(self) -> dict[str, Any]:
        """The project's layer: the ini file's options, ``[tool.xframe.baseline] drift_factor``
        where the ini sets none, and ``[tool.xframe.policy]``."""
        ini = ini_layer(self.config, self.backend_names)
        if "drift_factor" not in ini:
            from .project import baseline_table

            table = baseline_table(self.config)
            if "drift_factor" in table:
                ini.update(validate({"drift_factor": table["drift_factor"]}, "[tool.xframe.baseline]"))
        ini = validate(ini, "the ini file", self.backend_names)
        ini.update(self._project_policy())
        return ini

    def _project_policy(self) -> dict[str, Any]:
        """``[tool.xframe.policy]`` of pyproject.toml: the project's judging policy layer."""
        from ..judge.policy import parse_policy
        from .project import tool_table

        table = tool_table(self.config).get("policy")
        if table is None:
            return {}
        return {"policy": (parse_policy(table, "[tool.xframe.policy] of pyproject.toml", shared=True),)}

    def _cli_options(self) -> dict[str, Any]:
        return cli_layer(self.config, self.backend_names)

    def _threads_setting(self) -> str | int:
        from ..check.threads import chosen, parse

        raw = chosen(self.config.getoption("xframe_threads"), self.config.getini("xframe_threads"))
        try:
            return parse(raw)
        except ValueError:
            raise SpecError(f"ini option xframe_threads must be 'auto', 0 or a thread count, got {raw!r}") from None

    def marker_options(self, node: Any) -> dict[str, Any]:
        """Marker kwargs merged module < class < function; positional args are refused."""
        merged: dict[str, Any] = {}
        for marker in reversed(list(node.iter_markers(MARKER))):
            if marker.args:
                raise SpecError(
                    f"@pytest.mark.{MARKER} takes keyword options only, got positional {marker.args!r}",
                    hint=f"e.g. @pytest.mark.{MARKER}(atol=1e-5, backends=['onnxruntime'])",
                )
            merged.update(marker.kwargs)
        return validate(merged, f"@pytest.mark.{MARKER} on {node.nodeid}", self.backend_names)

    def options(self, marker: dict[str, Any], check: dict[str, Any]) -> CheckOptions:
        return resolve(self._ini, marker, check, self._cli)

    def marked_backends(self, node: Any) -> tuple[str, ...]:
        return resolve(self._ini, self.marker_options(node), self._cli).backends

    # -- paths and memo --------------------------------------------------------------------
    def _pytest_cache_dir(self, name: str) -> Path | None:
        cache = getattr(self.config, "cache", None)
        return Path(cache.mkdir(name)) if cache is not None else None

    @property
    def artifacts_root(self) -> Path:
        chosen = self.config.getoption("xframe_artifacts_dir") or self.config.getini("xframe_artifacts_dir")
        if chosen:
            return Path(chosen) if Path(chosen).is_absolute() else Path(self.config.invocation_params.dir) / chosen
        return self._pytest_cache_dir("xframe-artifacts") or Path(self.config.rootpath) / ".xframe-artifacts"

    @property
    def cache_root(self) -> Path | None:
        if self.config.getoption("xframe_no_cache"):
            return None
        chosen = self.config.getoption("xframe_cache_dir")
        if chosen:
            return Path(chosen).resolve()
        from ..cache import default_cache_root

        return default_cache_root(self.config)

    def _cache_root_or_none(self) -> Path | None:
        """The cache root; a pytest cache directory that cannot be made is one usable_root refuses."""
        try:
            return self.cache_root
        except OSError as exc:
            return Path(str(getattr(exc, "filename", None) or self.config.rootpath / ".pytest_cache"))

    def memo(self) -> SessionMemo:
        if self._memo is None:
            from ..cache import ArtifactCache, usable_root
            from ..check.memo import SessionMemo
            from ..check.threads import resolve as threads_for

            self._workdir = Path(tempfile.mkdtemp(prefix="pytest-xframe-"))
            cache = ArtifactCache(usable_root(self._cache_root_or_none()), scratch=self._workdir)
            run_dir = getattr(self.config, "workerinput", {}).get(RUN_DIR_KEY)
            shared = ArtifactCache(Path(run_dir)) if run_dir else None
            self._memo = SessionMemo(
                self._workdir, cache, threads=threads_for(self.threads_setting), shared_exports=shared, backends=self.backends,
                rootdir=Path(self.config.rootpath),
            )
        return self._memo

    def worker_input(self) -> dict[str, str]:
        """What the pytest-xdist controller hands each worker: one directory per run where the
        workers share their ONNX exports (removed with the run, so nothing outlives it)."""
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="pytest-xframe-run-"))
        return {RUN_DIR_KEY: str(self._run_dir)}

    def note_running(self, test_id: str, options: CheckOptions, model: str) -> None:
        """pytest-xdist worker: the records of a check about to run, where the controller finds
        them should this worker crash (``report.ledger``)."""
        run_dir = getattr(self.config, "workerinput", {}).get(RUN_DIR_KEY)
        if run_dir:
            precision = {b: self.backends.get(b).precision for b in options.backends}
            write_running(Path(run_dir), test_id, placeholder_records(test_id, options, model, precision))

    def _running_records(self, test_id: str) -> list[dict[str, Any]] | None:
        return read_running(self._run_dir, test_id) if self._run_dir is not None else None

    def module_done(self) -> None:
        """The last test of a module ran: release big models' runners (``SessionMemo.release_large``)."""
        if self._memo is not None:
            self._memo.release_large()

    def close(self) -> None:
        for path in (self._workdir, self._run_dir):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    # -- reporting ---------------------------------------------------------------------------
    def header(self) -> str:
        backends = resolve(self._ini, self._cli).backends
        from ..check.threads import describe

        cache = self.cache_root
        workers = getattr(self.config.option, "numprocesses", None)  # pytest-xdist's -n, resolved
        threads = describe(self.threads_setting, workers if isinstance(workers, int) and workers > 0 else None)
        line = f"xframe: backends {', '.join(backends)}; cache {cache if cache else 'off'}; {threads}"
        if self.lock is not None:
            from ..lockfile import describe

            line += "\nxframe: " + describe(*self.lock)
        return line

    def terminal_summary(self, terminalreporter: Any, exitstatus: int = 0) -> None:
        if exitstatus not in (0, 5) and self.lock is not None and self.lock[1]:  # 5: no tests collected
            from ..lockfile import describe

            terminalreporter.write_sep("=", "xframe stack")
            terminalreporter.write_line("xframe: this run failed on a stack that is not the tested one: " + describe(*self.lock), red=True)
        if self.records:
            from ..report.terminal import write_summary

            write_summary(terminalreporter, self.records, self.config.get_verbosity())
            for line in self.unmatched_policy():
                terminalreporter.write_line(line, yellow=True)
        if self.baseline.outcome is not None:
            from ..judge.baseline import summary_lines

            lines = summary_lines(self.baseline.outcome, self.records)
            if lines:
                terminalreporter.write_sep("=", "xframe baseline")
            for line in lines:
                terminalreporter.write_line(line, **({"red": True} if "DRIFT" in line else {}))

    def environment(self) -> dict[str, str]:
        """The stack's versions: the base distributions and those of every backend this run checked."""
        from ..report.json_report import environment

        checked = dict.fromkeys(r["backend"] for r in self.records if r["backend"] in self.backends)
        return environment(d for name in checked for d in self.backends.get(name).distributions)

    def unmatched_policy(self) -> list[str]:
        """Warnings for ``[tool.xframe.policy]`` output globs that matched no output of any model this
        session checked (the project's table may name any model's outputs, so only the whole run can tell)."""
        from ..judge.policy import unmatched_outputs

        outputs = {o["name"] for r in self.records for o in r["outputs"]}
        if not outputs:
            return []
        rules = unmatched_outputs(self._ini.get("policy", ()), outputs)
        return [f"xframe: warning: {r.where} names output {r.output!r}, which matches no output of any model checked in this session"
                for r in rules]

    def finish_baseline(self) -> None:
        """Controller only: stale entries and, with --xframe-baseline-update, the file."""
        self.baseline.finish(self.records, self.environment())

    def write_json(self, exitstatus: int) -> None:
        path = self.config.getoption("xframe_report")
        if path:
            from ..report.json_report import write_json

            lock = None
            if self.lock is not None:
                lock = {"path": str(self.lock[0]), "moved": [{"name": m.name, "locked": m.locked, "installed": m.installed} for m in self.lock[1]]}
            write_json(Path(path), self.records, int(exitstatus), self.environment(), baseline=self.baseline.outcome, lock=lock)
