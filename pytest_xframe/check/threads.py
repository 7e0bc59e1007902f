"""CPU threads per framework, so pytest-xdist workers do not fight over the cores.

torch, TensorFlow and ONNX Runtime each start a thread pool as wide as the machine. Under
``pytest -n N`` every worker does, so N workers run N times too many threads and spend their
time contending (measured here with 2 workers on 2 cores: ``-n 2`` slower than serial on a warm
cache). Like joblib and dask, give each worker ``CPUs // workers`` threads. Outside xdist the
frameworks keep their own defaults unless ``--xframe-threads=N`` asks for N.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: the value of ``--xframe-threads`` / ini ``xframe_threads`` that sizes pools per xdist worker
AUTO = "auto"


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def xdist_workers() -> int | None:
    """The number of pytest-xdist workers when this process is one of them, else None."""
    raw = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else None


def chosen(option: str | None, ini: str) -> str:
    """The raw setting in force: ``--xframe-threads``, else ini ``xframe_threads``, else ``auto``."""
    return option or str(ini).strip() or AUTO


def parse(raw: str) -> str | int:
    """``auto``, ``0`` (leave the frameworks alone) or a positive count; ValueError otherwise."""
    raw = raw.strip().lower()
    if raw == AUTO:
        return AUTO
    count = int(raw)  # ValueError names the bad value
    if count < 0:
        raise ValueError(f"thread count must be >= 0, got {count}")
    return count


def resolve(setting: str | int, workers: int | None = None, cpus: int | None = None) -> int | None:
    """Threads per framework pool for this process; None leaves the frameworks' defaults."""
    if setting == AUTO:
        workers = xdist_workers() if workers is None else workers
        if not workers:
            return None
        return max(1, (cpus or cpu_count()) // workers)
    return int(setting) or None


def describe(setting: str | int, workers: int | None) -> str:
    """One phrase for the session header."""
    count = resolve(setting, workers)
    if count is None:
        return "threads: framework defaults"
    if setting == AUTO:
        return f"threads: {count} per framework ({cpu_count()} CPUs / {workers} xdist workers)"
    return f"threads: {count} per framework"


def quiet_openmp(setting: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """In an xdist worker sizing pools itself (``auto``): idle OpenMP threads (torch's) sleep
    instead of spinning. Returns whether it set ``OMP_WAIT_POLICY``.

    libgomp spins its idle threads after every parallel region; N workers' spinning threads steal
    the cores their siblings compute on. Measured on 16 cores, ``-n 4``, four mid-size models on
    ONNX Runtime: 110 CPU-s -> 52 and 21.9 s -> 19.2 s wall warm. A serial run keeps spinning (it
    was slower passive: 20.3 s -> 25.0 s), and a value the user set is left alone. OpenMP reads
    it when torch loads it, so this runs before any conftest or test module is imported.
    """
    environ = os.environ if environ is None else environ
    if str(setting).strip().lower() != AUTO or xdist_workers() is None or "OMP_WAIT_POLICY" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def limit_torch(count: int | None) -> None:
    if count is None:
        return
    import torch

    torch.set_num_threads(count)
