"""Baselines of error figures: ``--xframe-baseline-update`` writes them, later runs fail on drift.

A parity check passes while its error stays within tolerance; a converter or framework upgrade
can make that error ten times worse and still pass. The baseline file keeps each check's figures
(per test x backend x output) from a seeded run, so a later run on the same inputs can say that a
figure got worse by more than a drift factor before the model breaks. Like pytest-regressions'
data files and syrupy's snapshots, the file is text meant to be committed and reviewed: stable key
order, one line per entry, figures rounded to three significant digits.

numpy only; the controller writes the file, every process reads it once.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import BackendResult, ParityReport

from ..errors import DriftError, SpecError

SCHEMA_ID = "pytest-xframe/baseline"
VERSION = 1
DEFAULT_FILE = "xframe-baseline.json"
#: error figures may grow this much (SNR may drop 20*log10 of it, 6.0 dB) before it is drift
DEFAULT_FACTOR = 2.0
#: SNR above this is float32 rounding (an fp32 route measures 120-140 dB): judged as this
SNR_CEILING_DB = 100.0
#: identity of an entry: (test node id, check, backend, output)
Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Figure:
    """How one figure is judged: its ``badness`` grows as accuracy gets worse."""

    name: str
    #: "error": larger is worse; "cosine": 1-cosine; "snr": dB, smaller is worse; "agreement": 1-share
    kind: str
    #: badness below this is noise, judged as the floor (so 1e-9 -> 5e-9 is not drift)
    floor: float = 0.0

    def badness(self, value: float) -> float:
        if self.kind == "cosine":
            return max(1.0 - value, self.floor)
        if self.kind == "agreement":
            return max(1.0 - value, self.floor)
        if self.kind == "snr":
            return min(value, SNR_CEILING_DB)
        return max(value, self.floor)

    def rounded(self, value: float) -> float:
        """Three significant digits of what matters (of 1-cosine for cosine; 0.1 dB for SNR)."""
        if self.kind == "snr":
            return round(min(value, SNR_CEILING_DB), 1)
        if self.kind == "cosine":
            gap = 1.0 - value
            return 1.0 if gap <= 0 else float(f"{value:.{max(0, 2 - math.floor(math.log10(gap)))}f}")
        return float(f"{value:.3g}")


#: every figure a baseline keeps, in file order; ``metrics`` figures come from the record's
#: per-output ``metrics`` dict and are "not measured" when absent
FIGURES: tuple[Figure, ...] = (
    Figure("max_abs", "error", floor=1e-6),
    Figure("max_rel", "error", floor=1e-4),
    Figure("smallest_atol", "error", floor=1e-6),
    Figure("max_mismatch", "error", floor=1e-3),
    Figure("cosine", "cosine", floor=0.5 * 10 ** (-SNR_CEILING_DB / 10)),
    Figure("snr_db", "snr"),
    Figure("topk", "agreement", floor=0.01),
)
TOP_LEVEL = ("max_abs", "max_rel")


@dataclass(frozen=True)
class Change:
    """A figure that moved beyond the drift factor, one way or the other."""

    key: Key
    figure: str
    baseline: float
    new: float
    worse: bool
    #: how far it moved, in words: "2.8e+03x" or "12.3 dB"
    by: str
    #: the limit it crossed, in words: "drift factor 2" or "margin 6.0 dB"
    limit: str

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.key[3], "figure": self.figure, "baseline": self.baseline, "new": self.new, "by": self.by, "limit": self.limit}


def _g(value: float) -> str:
    return f"{value:.7g}" if 0.999 < value < 1.0 else f"{value:.3g}"


def judge(figure: Figure, key: Key, baseline: float, new: float, factor: float) -> Change | None:
    """The change when ``new`` is worse (or better) than ``baseline`` by more than ``factor``."""
    before, after = figure.badness(baseline), figure.badness(new)
    if figure.kind == "snr":
        margin = 20.0 * math.log10(factor)  # an error amplitude ``factor`` times larger
        drop = before - after
        if abs(drop) <= margin:
            return None
        return Change(key, figure.name, baseline, new, drop > 0, f"{abs(drop):.1f} dB", f"margin {margin:.1f} dB")
    # 1-cosine grows with the square of the error's amplitude
    limit = factor**2 if figure.kind == "cosine" else factor
    ratio = after / before
    if 1.0 / limit <= ratio <= limit:
        return None
    by = ratio if ratio > 1 else 1.0 / ratio
    what = "1-cosine " if figure.kind == "cosine" else ""
    floor = f" counted from the noise floor {figure.floor:g}" if min(before, after) == figure.floor and figure.floor > 0 else ""
    limit_text = f"drift factor {factor:g}" + (" squared" if figure.kind == "cosine" else "")
    return Change(key, figure.name, baseline, new, ratio > 1, f"{what}{by:.3g}x{floor}", limit_text)


def figures_of(output: Mapping[str, Any]) -> dict[str, float]:
    """The figures a record's output holds, rounded; absent or non-finite ones are not measured."""
    metrics = output.get("metrics") or {}
    out = {}
    for fig in FIGURES:
        value = output.get(fig.name) if fig.name in TOP_LEVEL else metrics.get(fig.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isnan(value) or (math.isinf(value) and not (fig.kind == "snr" and value > 0)):
            continue  # +inf SNR (identical outputs) is kept, at the ceiling
        out[fig.name] = fig.rounded(float(value))
    return out


# -- the file -----------------------------------------------------------------------------------
@dataclass
class Baseline:
    """The file's content: the stack it was measured on and one entry per key."""

    environment: dict[str, str] = field(default_factory=dict)
    entries: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def seed(self, test: str, check: str) -> int | None:
        """The seed a test's check was measured with (the same for each of its backends)."""
        return next((e.get("seed") for k, e in self.entries.items() if k[:2] == (test, check) and e.get("seed") is not None), None)

    def group(self, test: str, check: str, backend: str) -> dict[Key, dict[str, Any]]:
        return {k: e for k, e in self.entries.items() if k[:3] == (test, check, backend)}


def load(path: Path) -> Baseline | None:
    """The baseline at ``path``, None when there is none; a broken file is a SpecError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpecError(f"cannot read the xframe baseline {path}", cause=str(exc)) from None
    fix = "fix the file (it is JSON), or delete it and rerun with --xframe-baseline-update"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"the xframe baseline {path} is not valid JSON", cause=str(exc), hint=fix) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID or doc.get("version") != VERSION:
        raise SpecError(f"{path} is not a pytest-xframe baseline (schema {SCHEMA_ID!r}, version {VERSION})", hint=fix)
    entries = {}
    for item in doc.get("entries", []):
        try:
            key = (str(item["test"]), str(item["check"]), str(item["backend"]), str(item["output"]))
        except (KeyError, TypeError):
            raise SpecError(f"an entry of the xframe baseline {path} lacks test/check/backend/output: {item!r}", hint=fix) from None
        entries[key] = {k: v for k, v in item.items() if k not in ("test", "check", "backend", "output")}
    return Baseline(dict(doc.get("environment") or {}), entries)


def dumps(baseline: Baseline) -> str:
    """JSON laid out to diff well: versions once at the top, then one sorted line per entry."""
    lines = ["{", f'  "schema": {json.dumps(SCHEMA_ID)},', f'  "version": {VERSION},', '  "environment": {']
    env = sorted(baseline.environment.items())
    lines += [f"    {json.dumps(k)}: {json.dumps(v)}" + ("," if i < len(env) - 1 else "") for i, (k, v) in enumerate(env)]
    lines += ["  },", '  "entries": [']
    items = sorted(baseline.entries.items())
    for i, (key, entry) in enumerate(items):
        ordered = dict(zip(("test", "check", "backend", "output"), key))
        ordered.update((k, entry[k]) for k in ("seed", "examples") if k in entry)
        ordered.update((f.name, entry[f.name]) for f in FIGURES if f.name in entry)
        lines.append("    " + json.dumps(ordered, allow_nan=False) + ("," if i < len(items) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def write(path: Path, baseline: Baseline) -> None:
    """Atomically: a reviewer never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(dumps(baseline), encoding="utf-8")
    os.replace(tmp, path)


def derived_seed(test_key: Any) -> int:
    """A seed for a test's first baseline: stable across runs and machines, so an update run
    that changes nothing rewrites the same figures."""
    from ..identity import int_digest

    return int_digest(test_key, 4)


# -- a check against its entries (in the process that ran it) -----------------------------------
def examine(baseline: Baseline, record: Mapping[str, Any], check: str, factor: float) -> dict[str, Any]:
    """The record's ``baseline`` field: whether it had entries, and what drifted or improved."""
    group = baseline.group(record["test"], check, record["backend"])
    info: dict[str, Any] = {"check": check, "status": "missing" if not group else "checked"}
    if not group:
        return info
    first = next(iter(group.values()))
    info.update(seed=first.get("seed"), examples=first.get("examples"), drift=[], improved=[], missing=[])
    for out in record["outputs"]:
        key = (record["test"], check, record["backend"], out["name"])
        entry = group.get(key)
        if entry is None:
            info["missing"].append(out["name"])
            continue
        new = figures_of(out)
        for fig in FIGURES:
            old = entry.get(fig.name)
            if isinstance(old, (int, float)) and fig.name in new:
                change = judge(fig, key, float(old), new[fig.name], factor)
                if change is not None:
                    info["drift" if change.worse else "improved"].append(change.to_dict())
    if info["drift"]:
        info["status"] = "drifted"
    return info


def drift_text(model: str, records: Iterable[Mapping[str, Any]], path: Path, factor: float) -> str | None:
    """DriftError's message for the records that drifted, None when none did."""
    drifted = [r for r in records if (r.get("baseline") or {}).get("drift")]
    if not drifted:
        return None
    lines = [f"{model} drifted from its baseline on {', '.join(r['backend'] for r in drifted)} (still within tolerance)"]
    for r in drifted:
        info = r["baseline"]
        for d in info["drift"]:
            lines.append(f"  [{r['backend']}] output {d['output']!r}: {d['figure']} {_g(d['baseline'])} -> {_g(d['new'])}, worse by {d['by']} (> {d['limit']})")
        lines.append(f"  [{r['backend']}] " + inputs_note(info, r))
    lines.append(f"  baseline: {path}")
    lines.append(
        "  try:   if the change is intended (a new model, converter or framework version), accept it with "
        f"--xframe-baseline-update and commit the file; or allow more with drift_factor= (now {factor:g})"
    )
    return "\n".join(lines)


def drift_headline(change: Mapping[str, Any]) -> str:
    """One drifted figure in a line (the summary's message for the record)."""
    return f"drift: output {change['output']!r} {change['figure']} {_g(change['baseline'])} -> {_g(change['new'])}, worse by {change['by']}"


def inputs_note(info: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """Whether the run drew the baseline's inputs: same seed and number of examples."""
    seed, examples = info.get("seed"), info.get("examples")
    parts = []
    if seed != record.get("seed"):
        parts.append(f"this run drew other inputs than the baseline: seed {record.get('seed')} here, {seed} there (a seed you set is never replaced)")
    else:
        parts.append(f"same inputs as the baseline (seed {seed})")
    if examples is not None and examples != record.get("examples"):
        parts.append(f"{record.get('examples')} examples here, {examples} there")
    return "; ".join(parts)


def against_baseline(run: BaselineRun, report: ParityReport, check: str) -> DriftError | None:
    """A check judged against its baseline entries, in the process that ran it: every backend's
    ``baseline`` field (a finding: drifted figures fail it) and the DriftError to raise, if any."""
    if run.settings.update or run.baseline is None:
        status = "update" if run.settings.update else "missing"
        for result in report.backends.values():
            result.baseline = {"check": check, "status": status}
        return None
    factor = report.options.drift_factor
    views = [_view(report, name, result) for name, result in report.backends.items()]
    for view in views:
        view["baseline"] = report.backends[view["backend"]].baseline = examine(run.baseline, view, check, factor)
    text = drift_text(report.model, views, run.settings.path, factor)
    if text is None:
        return None
    drifts = [{"backend": v["backend"], **d} for v in views for d in v["baseline"].get("drift", [])]
    backends = ",".join(v["backend"] for v in views if v["baseline"].get("drift"))
    return DriftError(text, model=report.model, backend=backends, drifts=drifts)


def _view(report: ParityReport, backend: str, result: BackendResult) -> dict[str, Any]:
    """What the baseline reads of one backend's result: its outputs' figures, seed and examples."""
    outputs = [
        {"name": c.name, "max_abs": c.max_abs, "max_rel": c.max_rel, "metrics": a.to_dict() if (a := result.metrics.get(c.name)) else None}
        for c in result.worst.values()
    ]
    return {"test": report.test_id, "backend": backend, "outputs": outputs, "seed": report.options.seed, "examples": result.examples}


# -- the controller: stale entries, the update, the summary --------------------------------------
def stale(baseline: Baseline, records: Iterable[Mapping[str, Any]], collected: set[str]) -> list[tuple[Key, str]]:
    """Entries of tests this run collected that no longer match anything: the test is gone, or it
    ran this backend without this check or output. Tests in modules this run did not collect, and
    tests it collected but did not run (-k, skips), are not judged."""
    modules = {c.split("::")[0] for c in collected}
    checks: dict[tuple[str, str], set[str]] = {}
    outputs: dict[tuple[str, str, str], set[str]] = {}
    for r in records:
        info = r.get("baseline")
        if info and r["outputs"]:
            checks.setdefault((r["test"], r["backend"]), set()).add(info["check"])
            outputs.setdefault((r["test"], info["check"], r["backend"]), set()).update(o["name"] for o in r["outputs"])
    out = []
    for key in sorted(baseline.entries):
        test, check, backend, output = key
        if test.split("::")[0] not in modules:
            continue
        if test not in collected:
            out.append((key, "test no longer exists"))
        elif (test, backend) in checks and check not in checks[(test, backend)]:
            out.append((key, f"the test no longer checks {check}"))
        elif (test, check, backend) in outputs and output not in outputs[(test, check, backend)]:
            out.append((key, "the model no longer has this output"))
    return out


def updated(old: Baseline | None, records: Iterable[Mapping[str, Any]], dropped: Iterable[Key], environment: dict[str, str]) -> tuple[Baseline, int, list[str]]:
    """The new baseline: entries of passing checks replaced, stale ones dropped, others kept.
    Returns it, the number of entries written, and the checks that failed (their entries kept)."""
    new = Baseline(dict(environment), dict(old.entries) if old else {})
    for key in dropped:
        new.entries.pop(key, None)
    written, kept = 0, []
    for r in records:
        info = r.get("baseline")
        if not info:
            continue
        if r["verdict"] != "passed" or not r["examples"]:
            if r["verdict"] != "skipped":
                kept.append(f"{r['test']} [{r['backend']}] ({r['verdict']})")
            continue
        for key in new.group(r["test"], info["check"], r["backend"]):
            del new.entries[key]
        for out in r["outputs"]:
            new.entries[(r["test"], info["check"], r["backend"], out["name"])] = {"seed": r.get("seed"), "examples": r["examples"], **figures_of(out)}
            written += 1
    return new, written, kept


# -- one process's view ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    path: Path
    update: bool


class BaselineRun:
    """The baseline as one pytest process sees it: read once (each xdist worker reads its own
    copy); the controller also gathers the collected tests and writes the update."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._read = False
        self._baseline: Baseline | None = None
        #: node ids this run collected, before deselection (-k): stale entries are judged on them
        self.collected: set[str] = set()
        #: what the controller found at the end (``finish``), for the summary and the JSON report
        self.outcome: dict[str, Any] | None = None

    @property
    def baseline(self) -> Baseline | None:
        if not self._read:
            self._baseline, self._read = load(self.settings.path), True
        return self._baseline

    @property
    def active(self) -> bool:
        """Updating, or checking against a file that exists: a project without one pays nothing."""
        return self.settings.update or self.baseline is not None

    def seed(self, test: str, check: str, given: int | None, test_key: Any, hypothesis_seed: Any) -> int | None:
        """The seed a check draws its inputs with: yours when you set one (xframe's or
        ``--hypothesis-seed``), else the baseline's, else (updating) one derived from the test."""
        if given is not None or hypothesis_seed is not None:
            return given
        recorded = self.baseline.seed(test, check) if self.baseline is not None else None
        if recorded is not None:
            return int(recorded)
        return derived_seed((test_key, check)) if self.settings.update else None

    def finish(self, records: list[dict[str, Any]], environment: dict[str, str]) -> None:
        """Controller only, once: judge stale entries and, when updating, write the file."""
        if not self.active:
            return
        old = self.baseline
        gone = stale(old, records, self.collected) if old is not None else []
        outcome: dict[str, Any] = {"path": str(self.settings.path), "updated": self.settings.update}
        if self.settings.update:
            new, written, kept = updated(old, records, [k for k, _ in gone], environment)
            if written or gone:  # a run with nothing to record leaves the file (or its absence) alone
                write(self.settings.path, new)
            outcome.update(written=written, removed=[_key_dict(k, why) for k, why in gone], not_updated=kept)
        else:
            outcome["stale"] = [_key_dict(k, why) for k, why in gone]
        self.outcome = outcome


def _key_dict(key: Key, reason: str) -> dict[str, str]:
    return {**dict(zip(("test", "check", "backend", "output"), key)), "reason": reason}


def summary_lines(outcome: Mapping[str, Any], records: Iterable[Mapping[str, Any]], limit: int = 10) -> list[str]:
    """The "xframe baseline" section: a headline, then drift, improvements, missing and stale."""
    infos = [(r, r["baseline"]) for r in records if r.get("baseline")]
    if not infos and not any(outcome.get(k) for k in ("stale", "removed", "not_updated")):
        return []  # no parity check ran: nothing to say
    name = os.path.relpath(outcome["path"]) if not os.path.isabs(os.path.relpath(outcome["path"])) else outcome["path"]
    if outcome["updated"]:
        lines = [f"{name} updated: {outcome['written']} entries written, {len(outcome['removed'])} stale removed"]
        lines += [f"  removed {_where(s)}: {s['reason']}" for s in outcome["removed"][:limit]]
        lines += [f"  not updated (the check did not pass): {k}" for k in outcome["not_updated"][:limit]]
        return lines
    drift = [(r, d) for r, i in infos for d in i.get("drift", [])]
    better = [(r, d) for r, i in infos for d in i.get("improved", [])]
    missing = [f"{r['test']} [{r['backend']}] {i['check']}" + (f" output {', '.join(map(repr, i['missing']))}" if i.get("missing") else "")
               for r, i in infos if i["status"] == "missing" or i.get("missing")]
    checked = sum(i["status"] != "missing" for _, i in infos)
    headline = f"{name}: {checked} checks compared, {len(drift)} figures drifted, {len(better)} improved, "
    lines = [headline + f"{len(missing)} without an entry, {len(outcome['stale'])} stale entries"]
    for label, items in (("DRIFT", drift), ("improved", better)):
        for r, d in items[:limit]:
            lines.append(f"  {label} {r['test']} [{r['backend']}] output {d['output']!r}: {d['figure']} {_g(d['baseline'])} -> {_g(d['new'])} ({d['by']})")
    lines += [f"  missing {m}" for m in missing[:limit]]
    lines += [f"  stale {_where(s)}: {s['reason']}" for s in outcome["stale"][:limit]]
    if better or missing or outcome["stale"]:
        lines.append("  (reported, not failed: --xframe-baseline-update records improvements and new checks and drops stale entries)")
    return lines


def _where(entry: Mapping[str, str]) -> str:
    return f"{entry['test']} [{entry['backend']}] {entry['check']} output {entry['output']!r}"
