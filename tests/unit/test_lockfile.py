"""The tested stack: the lock the README's commands install from, and what moved since it
(``--xframe-lock``, ``python -m pytest_xframe lock-diff``)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pytest_xframe.lockfile import Moved, installed_versions, moved_since, read_lock

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "locks" / "py311-current.txt"


def test_read_lock_takes_exact_pins_only(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("# comment\n-c other.txt\nTf_Keras==2.21.0\nnumpy==2.4.6 ; python_version >= '3.10'\nfoo>=1\nbar[extra]==1.0  # why\n")
    assert read_lock(lock) == {"tf-keras": "2.21.0", "numpy": "2.4.6", "bar": "1.0"}


def test_moved_since_names_changed_and_missing_packages() -> None:
    lock = {"onnxruntime": "1.32.0", "torch": "2.13.0", "numpy": "2.4.6", "gone": "1.0"}
    installed = {"onnxruntime": "1.33.1", "torch": "2.13.0+cpu", "numpy": "2.4.6"}
    assert moved_since(lock, installed) == [Moved("gone", "1.0", None), Moved("onnxruntime", "1.32.0", "1.33.1")]
    assert str(Moved("onnxruntime", "1.32.0", "1.33.1")) == "onnxruntime 1.32.0 -> 1.33.1"


def test_the_readme_commands_ci_and_tox_install_from_the_lock() -> None:
    """One lock, used everywhere the tested stack is installed, and it holds what CI installs."""
    readme = (ROOT / "README.md").read_text().splitlines()
    examples_cmd, test_cmd = readme[3], readme[4]
    assert test_cmd == (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    for cmd in (examples_cmd, test_cmd):
        assert cmd.count("pip install") == cmd.count("-c locks/py311-current.txt"), cmd
    tox = (ROOT / "tox.ini").read_text()
    assert "current,tf215: -c {env:XFRAME_LOCK_FILE:{toxinidir}/locks/{envname}.txt}" in tox
    pins = read_lock(LOCK)
    for dist in ("torch", "onnx", "onnxruntime", "tensorflow-cpu", "onnx-tf", "hypothesis", "numpy", "onnx2tf", "tf-keras", "pytest"):
        assert dist in pins, dist
    # the package itself stays loose: nothing in its own metadata is pinned to the lock's versions
    requires = metadata.requires("pytest-xframe") or []
    pinned = [r for r in requires if "==" in r.split(";")[0] and not r.startswith("onnx-tf==")]  # onnx-tf: 1.10 is its last release
    assert not pinned, pinned


def _lock_installed_here(installed: dict[str, str]) -> Path | None:
    """The lock whose frameworks are the installed ones (each tox env installs from its own)."""
    frameworks = ("torch", "onnx", "onnxruntime", "tensorflow", "tensorflow-cpu")
    for lock in sorted((ROOT / "locks").glob("*.txt")):
        pins = read_lock(lock)
        if all(installed.get(name, "").split("+")[0] == pins[name] for name in frameworks if name in pins):
            return lock
    return None


def test_this_environment_is_the_locked_one_where_the_lock_was_installed() -> None:
    """CI and tox install from a lock: the versions here must be all of that lock's (skipped
    elsewhere, e.g. in tox's py311-latest, whose point is to differ)."""
    installed = installed_versions()
    lock = _lock_installed_here(installed)
    if lock is None:
        pytest.skip("this environment was not installed from a lock in locks/")
    assert moved_since(read_lock(lock), installed) == [], lock.name


def test_lock_diff_command_exit_statuses(tmp_path: Path) -> None:
    numpy = metadata.version("numpy")
    same, moved = tmp_path / "same.txt", tmp_path / "moved.txt"
    same.write_text(f"numpy=={numpy}\n")
    moved.write_text(f"numpy=={numpy}\npytest==0.0.1\nnot-installed-anywhere==1.0\n")

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest_xframe", "lock-diff", str(path)], capture_output=True, text=True, check=False)

    assert run(same).returncode == 0
    out = run(moved)
    assert out.returncode == 1
    assert f"  not-installed-anywhere 1.0 -> absent\n  pytest 0.0.1 -> {pytest.__version__}\n" in out.stdout
    missing = run(tmp_path / "nope.txt")
    assert missing.returncode == 2 and "cannot read the lock" in missing.stderr


def test_the_installed_version_is_the_one_first_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second copy of a distribution's metadata later on sys.path (setuptools puts its vendored
    packages' there) is not what is imported, so it is not what the lock is compared with."""
    for where, version in (("first", "2.0"), ("second", "1.0")):
        info = tmp_path / where / f"xframe_probe_dist-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: xframe-probe-dist\nVersion: {version}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))
    assert metadata.version("xframe-probe-dist") == "2.0"
    assert installed_versions()["xframe-probe-dist"] == "2.0"
    assert moved_since({"xframe-probe-dist": "2.0"}, installed_versions()) == []
