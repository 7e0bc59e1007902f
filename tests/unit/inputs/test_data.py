"""``pytest_xframe.inputs.data``: the sources of ``data=``, each sample's checks, streaming, calibration
from the data and the exploration around the samples. numpy only, no framework."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_xframe import Dim, SpecError, TensorSpec
from pytest_xframe.inputs.data.dataset import open_data
from pytest_xframe.inputs.data.explore import around_samples, perturb
from pytest_xframe.inputs.data.sources import NpzStack
from pytest_xframe.inputs.spec import InputSlot

SLOTS = (InputSlot("x", TensorSpec((Dim("batch", 1, 4), 3))), InputSlot("ids", TensorSpec((Dim("seq", 2, 6),), "int64", low=0, high=9)))


def _open(value, tmp_path: Path, limit: int | None = None):
    return open_data(value, SLOTS, "M", tmp_path, tmp_path, limit)


def _sample(i: int) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 3), float(i), np.float32), "ids": np.arange(4) % 10}


def test_a_directory_is_read_in_file_order_with_labels(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in (2, 0, 1):
        np.savez(tmp_path / "d" / f"s{i}.npz", label=np.int64(i), **_sample(i))
    data = _open("d", tmp_path)  # relative: from the rootdir
    samples = list(data)
    assert [s.where for s in samples] == ["'s0.npz'", "'s1.npz'", "'s2.npz'"]
    assert [int(s.label) for s in samples] == [0, 1, 2] and samples[2].feeds["x"][0, 0] == 2.0
    assert data.description == f"3 .npz files in {tmp_path / 'd'}"
    assert data.stats["x"].count == 9 and data.stats["x"].high == 2.0 and "ids" not in data.stats


def test_a_stacked_npz_gets_a_batch_axis_per_row(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(15, dtype=np.float32).reshape(5, 3), ids=np.zeros((5, 3), np.int64), label=np.arange(5))
    data = _open(tmp_path / "d.npz", tmp_path, limit=4)
    assert len(data) == 4 and data.description == f"the first 4 of 5 samples in {tmp_path / 'd.npz'}"
    third = data.sample(2)
    assert third.where == "d.npz[2]" and third.feeds["x"].shape == (1, 3) and third.feeds["x"].tolist() == [[6.0, 7.0, 8.0]]
    assert [s.feeds["x"][0, 0] for s in data] == [0.0, 3.0, 6.0, 9.0]


def test_lists_tuples_and_generators(tmp_path: Path) -> None:
    as_tuples = _open([(s["x"], s["ids"], 1) for s in map(_sample, range(3))], tmp_path)
    assert [s.where for s in as_tuples] == ["item 0", "item 1", "item 2"] and as_tuples.sample(1).label == 1
    spooled = _open((_sample(i) for i in range(1000)), tmp_path, limit=5)
    assert len(spooled) == 5 and spooled.sample(4).feeds["x"][0, 0] == 4.0
    assert spooled.description == "5 items of a generator (read once, spooled to disk)"


def test_calibration_takes_samples_spread_over_the_data_of_one_shape(tmp_path: Path) -> None:
    items = [_sample(i) for i in range(10)]
    items[9] = {"x": np.zeros((2, 3), np.float32), "ids": np.arange(4)}
    calibration = _open(items, tmp_path).calibration(4)
    assert calibration.source == "data" and [s["x"][0, 0] for s in calibration.samples] == [0.0, 3.0, 6.0]
    assert calibration.describe()["data"] == "3 of the 10 samples of data=, evenly spaced (those of the first one's shape, 1 of other shapes left out)"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"x": np.zeros((1, 4), np.float32), "ids": np.arange(3)}], "data sample item 0, input 'x' has shape [1, 4], the input is declared float32[batch[1..4], 3]"),
        ([{"x": np.zeros((1, 3), np.int32), "ids": np.arange(3)}], "data sample item 0, input 'x' has dtype int32, the input is float32"),
        ([{"x": np.zeros((1, 3), np.float32), "ids": np.arange(3.0)}], "data sample item 0, input 'ids' has dtype float64, the input is int64"),
        ([{"x": np.zeros((1, 3), np.float32)}], "data sample item 0 lacks input(s) 'ids'"),
        ([{"x": np.zeros((1, 3), np.float32), "ids": np.arange(3), "mask": 1}], "data sample item 0 names input(s) 'mask' the model does not take"),
        ([{"x": np.full((1, 3), np.inf, np.float32), "ids": np.arange(3)}], "data sample item 0, input 'x' holds 3 NaN or Inf value(s)"),
        ([{"x": np.zeros((1, 3), np.float32), "ids": np.array([0, 12])}], "data sample item 0, input 'ids' holds values in [0, 12], outside the spec's [0, 9]"),
        ([{"x": np.zeros((1, 3), np.float32), "ids": np.arange(3), "label": 0.5}], "data sample item 0 has a label of float64, not class indices"),
        ([(np.zeros((1, 3), np.float32),)], "data sample item 0 has 1 value(s), the model takes 2 input(s)"),
        ([], "data= holds no samples"),
        (iter([]), "data= holds no samples (an empty iterable)"),
        (42, "data= must be a path or an iterable of samples, got int"),
    ],
)
def test_bad_samples_are_spec_errors_naming_sample_and_input(tmp_path: Path, items, message: str) -> None:
    with pytest.raises(SpecError) as info:
        list(_open(items, tmp_path))
    assert message in str(info.value) and "(model M)" in str(info.value)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "ragged.npz", x=np.zeros((3, 3), np.float32), ids=np.zeros((2, 3), np.int64))
    np.savez(tmp_path / "objects.npz", x=np.array([object()] * 2))
    cases = {
        "empty": f"data directory {tmp_path / 'empty'} holds no .npz file",
        "broken": f"data file {tmp_path / 'broken' / 'a.npz'} cannot be read as .npz",
        "ragged.npz": f"data file {tmp_path / 'ragged.npz'} must hold arrays with one leading sample axis",
        "objects.npz": f"data file {tmp_path / 'objects.npz'} cannot be read as .npz",
        "missing": f"data path {tmp_path / 'missing'} does not exist",
    }
    for name, message in cases.items():
        with pytest.raises(SpecError) as info:
            list(_open(name, tmp_path))
        assert message in str(info.value), name


def test_a_row_of_a_large_stacked_npz_is_read_without_loading_the_array(tmp_path: Path) -> None:
    """More data than memory: a 64 MiB array, stored plain and compressed, read row by row."""
    rows = np.random.default_rng(0).standard_normal((2048, 8192)).astype(np.float32)
    np.savez(tmp_path / "plain.npz", x=rows)
    np.savez_compressed(tmp_path / "packed.npz", x=rows)
    for name in ("plain.npz", "packed.npz"):
        stack = NpzStack(tmp_path / name, "M")
        tracemalloc.start()
        try:
            row = stack.read(2000)["x"]
            streamed = sum(float(r["x"][0]) for r in stack.records(2048))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert np.array_equal(row, rows[2000]) and streamed == pytest.approx(float(rows[:, 0].astype(np.float64).sum()), rel=1e-5)
        # a plain member's row is read in place (measured 0.1 MiB); a compressed one is decompressed up
        # to it, 1 MiB at a time (measured 4.1 MiB, zlib's state included)
        assert peak < (1 if name == "plain.npz" else 8) * 2**20, f"{name}: {peak / 2**20:.1f} MiB held to read rows of a 64 MiB array"


def test_perturb_crops_pads_and_bounds_the_noise() -> None:
    slots = (InputSlot("x", TensorSpec((1, Dim("seq", 1, 8), 2), low=-1.0, high=1.0)), InputSlot("ids", TensorSpec((1, Dim("seq", 1, 8)), "int64", low=0, high=9)))
    feeds = {"x": np.array([[[0.0, 0.5], [0.2, 0.9], [0.4, -0.3]]], np.float32), "ids": np.array([[3, 4, 5]])}
    from pytest_xframe.inputs.data.dataset import InputStats

    stats = {"x": InputStats()}
    stats["x"].add(np.array([0.0, 2.0]))  # std 1
    longer = perturb(feeds, slots, stats, 0.5, 0.0, 0, {"seq": 5})
    assert longer["ids"].tolist() == [[3, 4, 5, 5, 5]] and longer["x"][0, 4].tolist() == pytest.approx([0.4, -0.3])
    shorter = perturb(feeds, slots, stats, 0.5, 1.0, 7, {"seq": 2})
    assert shorter["ids"].tolist() == [[3, 4]]
    moved = np.abs(shorter["x"] - feeds["x"][:, :2])
    assert moved.max() <= 0.5 + 1e-6 and moved.max() > 0 and shorter["x"].max() <= 1.0, "within data_scale x std, and the spec's high"
    assert perturb(feeds, slots, stats, 0.5, 1.0, 7, {"seq": None})["x"].shape == (1, 3, 2)
    unbounded = (InputSlot("x", TensorSpec((1, Dim("seq", 1, 8), 2))), slots[1])
    far = perturb({"x": np.full((1, 3, 2), 2.0, np.float32), "ids": feeds["ids"]}, unbounded, stats, 0.5, 1.0, 3, {})
    assert far["x"].max() <= 2.5 + 1e-6 and far["x"].max() > 2.0, "no spec range: the data's [0, 2], widened by 0.5 std"


_DATA: list = []


def _explored_data(tmp_path_factory: pytest.TempPathFactory):
    if not _DATA:
        data = open_data([_sample(i) for i in range(6)], SLOTS, "M", Path("."), tmp_path_factory.mktemp("explore"), None)
        list(data)  # the run over the samples: fills the spread the search scales by
        _DATA.append(data)
    return _DATA[0]


@settings(max_examples=60, deadline=None)
@given(drawn=st.data())
def test_every_explored_input_stays_near_a_sample(drawn: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = _explored_data(tmp_path_factory)
    feeds = drawn.draw(around_samples(data, 0.25))
    assert 2 <= feeds["ids"].shape[0] <= 6 and 1 <= feeds["x"].shape[0] <= 4
    index = int(feeds.origin.split()[1])
    source = data.sample(index).feeds["x"][0, 0]
    assert np.all(np.abs(feeds["x"] - source) <= 0.25 * data.stats["x"].std + 1e-6), feeds.origin
    assert set(np.unique(feeds["ids"])) <= set(range(4)), "token ids are kept, cropped or repeated, never invented"
