"""Tests of pytest_xframe.cache on the real filesystem, with real processes (no mocks)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pytest_xframe.cache import FORMAT_VERSION, ArtifactCache, CacheCorruptWarning, CacheLockTimeout, CacheResult, cache_key_digest

REPO = Path(__file__).resolve().parents[2]
KEY = {"model": "mlp", "opset": "17", "dtype": "float32"}


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Builder:
    """A build callable that records its calls and writes a small nested tree."""

    def __init__(self, payload: bytes = b"weights" * 1000) -> None:
        self.calls: list[Path] = []
        self.payload = payload

    def __call__(self, out: Path) -> None:
        assert out.is_dir() and not any(out.iterdir()), "build must get a fresh empty dir"
        self.calls.append(out)
        (out / "saved_model.pb").write_bytes(b"graph")
        (out / "variables").mkdir()
        (out / "variables" / "variables.data").write_bytes(self.payload)
        (out / "assets").mkdir()  # empty dirs survive too


def _check_contents(path: Path, payload: bytes = b"weights" * 1000) -> None:
    assert (path / "saved_model.pb").read_bytes() == b"graph"
    assert (path / "variables" / "variables.data").read_bytes() == payload
    assert (path / "assets").is_dir()


def _entry(root: Path, kind: str, key: dict[str, str]) -> Path:
    digest = cache_key_digest(kind, key)
    return root / kind / digest[:2] / digest


def _tmp_children(root: Path) -> list[Path]:
    tmp = root / ".tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


# --------------------------------------------------------------------------------------------
# keys


def test_digest_is_canonical_and_order_independent():
    a = cache_key_digest("onnx", {"a": "1", "b": "2"})
    b = cache_key_digest("onnx", {"b": "2", "a": "1"})
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    canonical = json.dumps(
        {"format": FORMAT_VERSION, "kind": "onnx", "key": {"a": "1", "b": "2"}}, sort_keys=True, separators=(",", ":")
    )
    assert a == hashlib.sha256(canonical.encode()).hexdigest()
    assert cache_key_digest("onnx", {"a": "1", "b": "3"}) != a
    assert cache_key_digest("savedmodel", {"a": "1", "b": "2"}) != a
    # No ambiguity between keys and values that concatenate alike.
    assert cache_key_digest("k", {"ab": "c"}) != cache_key_digest("k", {"a": "bc"})


@pytest.mark.parametrize("kind", ["", "../up", "a/b", ".tmp", "x" * 65, 3])
def test_bad_kind_rejected(kind):
    with pytest.raises(ValueError, match="cache kind"):
        cache_key_digest(kind, {})


@pytest.mark.parametrize("key", [{"a": 1}, {1: "a"}, {"a": None}, [("a", "b")]])
def test_non_string_key_rejected(key):
    with pytest.raises(TypeError, match="str"):
        cache_key_digest("onnx", key)


# --------------------------------------------------------------------------------------------
# miss / hit / layout


def test_miss_then_hit_builds_once(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    build = Builder()

    first = cache.get_or_build("savedmodel", KEY, build)
    assert first == CacheResult(first.path, hit=False, rebuilt_corrupt=False)
    _check_contents(first.path)

    second = cache.get_or_build("savedmodel", KEY, build)
    assert second.hit and not second.rebuilt_corrupt
    assert second.path == first.path
    assert len(build.calls) == 1
    _check_contents(second.path)
    # The build dir was a temp dir inside root, now gone; nothing left in .tmp.
    assert build.calls[0].is_relative_to(tmp_path / "cache")
    assert not build.calls[0].exists()
    assert _tmp_children(tmp_path / "cache") == []


def test_entry_layout_and_manifest(tmp_path):
    root = tmp_path / "cache"
    result = ArtifactCache(root).get_or_build("savedmodel", KEY, Builder())
    entry = _entry(root, "savedmodel", KEY)
    assert result.path == entry / "files"
    assert (entry.parent / f"{entry.name}.lock").exists()

    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_VERSION
    assert manifest["kind"] == "savedmodel"
    assert manifest["key"] == KEY
    assert manifest["dirs"] == ["assets", "variables"]
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == {"saved_model.pb", "variables/variables.data"}
    data = (result.path / "variables" / "variables.data").read_bytes()
    assert files["variables/variables.data"]["size"] == len(data)
    assert files["variables/variables.data"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_different_keys_and_kinds_give_different_entries(tmp_path):
    cache = ArtifactCache(tmp_path)
    b1, b2, b3 = Builder(b"one"), Builder(b"two"), Builder(b"three")
    r1 = cache.get_or_build("onnx", {"model": "a"}, b1)
    r2 = cache.get_or_build("onnx", {"model": "b"}, b2)
    r3 = cache.get_or_build("savedmodel", {"model": "a"}, b3)
    assert len({r1.path, r2.path, r3.path}) == 3
    assert not (r1.hit or r2.hit or r3.hit)
    _check_contents(r1.path, b"one")
    _check_contents(r2.path, b"two")
    _check_contents(r3.path, b"three")


def test_key_order_does_not_matter(tmp_path):
    cache = ArtifactCache(tmp_path)
    build = Builder()
    r1 = cache.get_or_build("onnx", {"a": "1", "b": "2", "c": "3"}, build)
    r2 = cache.get_or_build("onnx", {"c": "3", "a": "1", "b": "2"}, build)
    assert r2.hit and r2.path == r1.path and len(build.calls) == 1


def test_hit_across_cache_instances(tmp_path):
    """A new ArtifactCache on the same root (i.e. the next pytest run) reuses the entry."""
    build = Builder()
    r1 = ArtifactCache(tmp_path).get_or_build("onnx", KEY, build)
    r2 = ArtifactCache(tmp_path).get_or_build("onnx", KEY, build)
    assert r2.hit and r2.path == r1.path and len(build.calls) == 1


# --------------------------------------------------------------------------------------------
# corruption


def _truncate(files: Path, entry: Path) -> None:
    with open(files / "variables" / "variables.data", "r+b") as f:
        f.truncate(10)


def _flip_byte_same_size(files: Path, entry: Path) -> None:
    p = files / "variables" / "variables.data"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))


def _delete_file(files: Path, entry: Path) -> None:
    (files / "saved_model.pb").unlink()


def _extra_file(files: Path, entry: Path) -> None:
    (files / "stray.txt").write_text("written into the entry by mistake")


def _delete_dir(files: Path, entry: Path) -> None:
    (files / "assets").rmdir()


def _delete_manifest(files: Path, entry: Path) -> None:
    (entry / "manifest.json").unlink()


def _garbage_manifest(files: Path, entry: Path) -> None:
    (entry / "manifest.json").write_bytes(b"{not json\xff")


def _manifest_missing_field(files: Path, entry: Path) -> None:
    m = json.loads((entry / "manifest.json").read_text())
    del m["files"]
    (entry / "manifest.json").write_text(json.dumps(m))


def _manifest_other_key(files: Path, entry: Path) -> None:
    m = json.loads((entry / "manifest.json").read_text())
    m["key"] = {"model": "other"}
    (entry / "manifest.json").write_text(json.dumps(m))


def _delete_files_dir(files: Path, entry: Path) -> None:
    shutil.rmtree(files)


@pytest.mark.parametrize(
    "tamper",
    [
        _truncate,
        _flip_byte_same_size,
        _delete_file,
        _extra_file,
        _delete_dir,
        _delete_manifest,
        _garbage_manifest,
        _manifest_missing_field,
        _manifest_other_key,
        _delete_files_dir,
    ],
)
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, tamper):
    cache = ArtifactCache(tmp_path)
    build = Builder()
    first = cache.get_or_build("savedmodel", KEY, build)
    entry = _entry(tmp_path, "savedmodel", KEY)
    tamper(first.path, entry)

    with pytest.warns(CacheCorruptWarning, match=entry.name) as record:
        again = cache.get_or_build("savedmodel", KEY, build)
    assert record[0].filename == __file__  # points at the caller
    assert again.rebuilt_corrupt and not again.hit
    assert again.path == first.path
    assert len(build.calls) == 2
    _check_contents(again.path)
    assert not (again.path / "stray.txt").exists()
    assert _tmp_children(tmp_path) == []  # the corrupt copy is gone too

    third = cache.get_or_build("savedmodel", KEY, build)
    assert third.hit and not third.rebuilt_corrupt and len(build.calls) == 2


# --------------------------------------------------------------------------------------------
# failed and killed builds


class BuildFailed(Exception):
    pass


def test_build_raising_leaves_nothing_and_propagates_unchanged(tmp_path):
    cache = ArtifactCache(tmp_path)
    error = BuildFailed("converter blew up")

    def failing(out: Path) -> None:
        (out / "half.bin").write_bytes(b"x" * 100)
        raise error

    with pytest.raises(BuildFailed) as info:
        cache.get_or_build("savedmodel", KEY, failing)
    assert info.value is error
    assert not os.path.lexists(_entry(tmp_path, "savedmodel", KEY))
    assert _tmp_children(tmp_path) == []

    build = Builder()
    result = cache.get_or_build("savedmodel", KEY, build)
    assert not result.hit and not result.rebuilt_corrupt and len(build.calls) == 1
    _check_contents(result.path)


def test_build_writing_symlink_is_refused(tmp_path):
    if not hasattr(os, "symlink"):
        pytest.skip("no symlinks")

    def linking(out: Path) -> None:
        (out / "real.txt").write_text("x")
        try:
            (out / "link.txt").symlink_to(out / "real.txt")
        except OSError:
            pytest.skip("cannot create symlinks here")

    with pytest.raises(ValueError, match="symlink"):
        ArtifactCache(tmp_path).get_or_build("onnx", KEY, linking)
    assert not os.path.lexists(_entry(tmp_path, "onnx", KEY))
    assert _tmp_children(tmp_path) == []


KILLED_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pytest_xframe.cache import ArtifactCache

    def build(out):
        (out / "saved_model.pb").write_bytes(b"gra")   # partial
        os._exit(137)                                   # killed: no finally, no cleanup

    ArtifactCache(Path(sys.argv[1])).get_or_build("savedmodel", {"model": "mlp", "opset": "17", "dtype": "float32"}, build)
    """
)


def test_killed_build_leaves_only_untrusted_temp_dir(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(tmp_path)], env=_child_env(), capture_output=True, timeout=60
    )
    assert proc.returncode == 137, proc.stderr.decode()
    entry = _entry(tmp_path, "savedmodel", KEY)
    assert not os.path.lexists(entry)
    leftovers = _tmp_children(tmp_path)
    assert len(leftovers) == 1 and (leftovers[0] / "files" / "saved_model.pb").read_bytes() == b"gra"

    build = Builder()
    result = ArtifactCache(tmp_path).get_or_build("savedmodel", KEY, build)
    assert not result.hit and not result.rebuilt_corrupt and len(build.calls) == 1
    _check_contents(result.path)
    assert _tmp_children(tmp_path) == []  # the dead build's dir was cleaned up


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_dirs_of_other_entries_are_cleaned(tmp_path):
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    other = "f" * 64
    dead = _dead_pid()
    old = time.time() - 2 * 3600

    old_dead = tmp / f"b-{other}-{dead}-abc"
    old_alive = tmp / f"b-{other}-{os.getpid()}-abc"  # an hours-long build still running
    fresh_dead = tmp / f"b-{other}-{dead}-def"  # might belong to another host: wait an hour
    trash = tmp / "t-xyz"
    unrelated = tmp / "not-ours"
    for d in (old_dead, old_alive, fresh_dead, trash, unrelated):
        (d / "files").mkdir(parents=True)
        (d / "files" / "partial").write_bytes(b"p")
    for d in (old_dead, old_alive, unrelated):
        os.utime(d, (old, old))

    ArtifactCache(tmp_path).get_or_build("onnx", KEY, Builder())
    assert not old_dead.exists()
    assert not trash.exists()
    assert old_alive.exists() and fresh_dead.exists() and unrelated.exists()


# --------------------------------------------------------------------------------------------
# concurrency


RACING_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from pytest_xframe.cache import ArtifactCache

    root, counter, go = map(Path, sys.argv[1:4])

    def build(out):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        (out / "model.onnx").write_bytes(b"built by %d" % os.getpid())

    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never got the go signal")
        time.sleep(0.002)
    r = ArtifactCache(root).get_or_build("onnx", {"model": "race"}, build)
    print(json.dumps({"path": str(r.path), "hit": r.hit, "corrupt": r.rebuilt_corrupt,
                      "data": (r.path / "model.onnx").read_text()}), flush=True)
    """
)


def test_two_processes_on_cold_cache_build_once(tmp_path):
    root, counter, go = tmp_path / "cache", tmp_path / "counter.txt", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACING_CHILD, str(root), str(counter), str(go)],
            env=_child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:  # both are up and about to race before either starts
            assert p.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    assert len(counter.read_text().splitlines()) == 1  # exactly one build
    assert results[0]["path"] == results[1]["path"]
    assert results[0]["data"] == results[1]["data"]
    assert sorted(r["hit"] for r in results) == [False, True]
    assert not any(r["corrupt"] for r in results)


def test_lock_timeout_names_the_lock_file(tmp_path):
    import filelock

    entry = _entry(tmp_path, "onnx", KEY)
    entry.parent.mkdir(parents=True)
    lock_path = entry.parent / f"{entry.name}.lock"
    build = Builder()
    with filelock.FileLock(str(lock_path)):  # another builder holds it
        with pytest.raises(CacheLockTimeout, match=str(lock_path).replace("\\", "\\\\")) as info:
            ArtifactCache(tmp_path, lock_timeout=0.2).get_or_build("onnx", KEY, build)
    assert isinstance(info.value, TimeoutError)
    assert build.calls == []
    assert ArtifactCache(tmp_path).get_or_build("onnx", KEY, build).hit is False


# --------------------------------------------------------------------------------------------
# disabled cache, clear, default root, import cost


def test_root_none_builds_every_time_into_fresh_dirs(tmp_path):
    cache = ArtifactCache(None, scratch=tmp_path / "scratch")
    build = Builder()
    r1 = cache.get_or_build("onnx", KEY, build)
    r2 = cache.get_or_build("onnx", KEY, build)
    assert len(build.calls) == 2
    assert r1.path != r2.path
    for r in (r1, r2):
        assert not r.hit and not r.rebuilt_corrupt
        assert r.path.parent == tmp_path / "scratch"
        _check_contents(r.path)
    cache.clear()  # no-op, and leaves the caller-owned dirs alone
    assert r1.path.exists() and r2.path.exists()


def test_root_none_defaults_to_system_temp_and_cleans_up_on_failure(tmp_path):
    cache = ArtifactCache(None)
    result = cache.get_or_build("onnx", KEY, Builder())
    try:
        assert result.path.parent == Path(tempfile.gettempdir())
        _check_contents(result.path)
    finally:
        shutil.rmtree(result.path)

    seen: list[Path] = []

    def failing(out: Path) -> None:
        seen.append(out)
        raise BuildFailed

    with pytest.raises(BuildFailed):
        ArtifactCache(None, scratch=tmp_path).get_or_build("onnx", KEY, failing)
    assert not seen[0].exists()


def test_clear_removes_only_our_entries(tmp_path):
    root = tmp_path / "cache"
    cache = ArtifactCache(root)
    cache.get_or_build("onnx", {"m": "a"}, Builder())
    cache.get_or_build("savedmodel", {"m": "a"}, Builder())
    (root / ".tmp" / "b-leftover").mkdir(parents=True)
    (root / "README.txt").write_text("not ours")
    (root / "onnx" / "notes").mkdir()

    cache.clear()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["README.txt", "onnx", "onnx/notes"]

    build = Builder()
    assert not cache.get_or_build("onnx", {"m": "a"}, build).hit and len(build.calls) == 1


def test_clear_is_safe_without_root(tmp_path):
    ArtifactCache(tmp_path / "does-not-exist").clear()
    ArtifactCache(None).clear()
    assert not (tmp_path / "does-not-exist").exists()


def test_import_is_light():
    code = (
        "import sys, pytest_xframe.cache; "
        "heavy = {'filelock', 'torch', 'tensorflow', 'onnx', 'onnxruntime', 'numpy', 'pytest'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
