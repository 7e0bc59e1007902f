"""Detections compared as sets (``judge/detections.py``, ``judge/structured.py``): matching by IoU
with scipy's assignment solver, what is judged per pair and what counts as unmatched, and the
declarations' validation. A detector whose backend sorts its detections runs end to end in
``tests/e2e/test_data.py``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pytest_xframe import SpecError
from pytest_xframe.judge.detections import iou_matrix, match, to_xyxy
from pytest_xframe.judge.structured import DetectionRule, parse_detections, parse_sequences

#: matching boxes takes scipy's assignment solver (the extra 'detections'; not in every tox stack)
needs_scipy = pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="detections= matches with scipy (extra 'detections')")

RULE = DetectionRule(boxes="boxes", scores="scores", labels="labels", score_threshold=0.5, min_iou=0.9, max_score_delta=0.05)


def _dets(n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 50, (1, n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 20, (1, n, 2))], axis=-1).astype(np.float32)
    return {"boxes": boxes, "scores": rng.uniform(0.3, 1.0, (1, n)).astype(np.float32), "labels": rng.integers(0, 5, (1, n))}


def _permuted(dets: dict[str, np.ndarray], order: list[int]) -> dict[str, np.ndarray]:
    return {k: v[:, order] for k, v in dets.items()}


@needs_scipy
def test_reordered_detections_match_as_a_set() -> None:
    ref = _dets()
    found = match(ref, _permuted(ref, [5, 3, 1, 0, 2, 4]), RULE)
    assert found.failures(RULE) == [] and found.unmatched == 0 and found.min_iou == 1.0
    assert found.pairs == found.detections == int((ref["scores"] >= 0.5).sum())


@needs_scipy
def test_what_fails_a_set() -> None:
    ref = _dets()
    got = {k: v.copy() for k, v in ref.items()}
    strong = np.flatnonzero(ref["scores"][0] >= 0.5)
    a, b, c = (int(i) for i in strong[:3])
    got["labels"][0, a] += 1  # another class
    got["boxes"][0, b, 2:] += 2.0  # a box that moved
    got["scores"][0, c] = 0.1  # a detection the backend lost
    found = match(ref, got, RULE)
    assert found.label_mismatches == 1 and found.unmatched_reference == 1 and found.unmatched_backend == 0
    assert 0.5 < found.min_iou < 0.9
    assert [f.split(" ")[0] for f in found.failures(RULE)] == ["1", "matched", "1"]


@needs_scipy
def test_a_detection_just_under_the_threshold_still_finds_its_partner() -> None:
    ref = _dets()
    got = {k: v.copy() for k, v in ref.items()}
    i = int(np.flatnonzero(ref["scores"][0] >= 0.5)[0])
    ref["scores"][0, i], got["scores"][0, i] = 0.52, 0.49  # across the threshold, within max_score_delta
    found = match(ref, got, RULE)
    assert found.unmatched == 0 and found.max_score_delta == pytest.approx(0.03, abs=1e-6)


def test_box_formats_and_iou() -> None:
    xyxy = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    assert np.allclose(to_xyxy(np.array([[1.0, 1.0, 2.0, 2.0]]), "cxcywh"), [[0.0, 0.0, 2.0, 2.0]])
    assert np.allclose(to_xyxy(np.array([[1.0, 1.0, 2.0, 2.0]]), "xywh"), [[1.0, 1.0, 3.0, 3.0]])
    assert np.allclose(iou_matrix(xyxy, xyxy), [[1.0, 1 / 7], [1 / 7, 1.0]])
    with pytest.raises(ValueError, match="do not pair up as detections"):
        match({"boxes": np.zeros((1, 3, 4)), "scores": np.zeros((1, 2)), "labels": np.zeros((1, 3))}, _dets(), RULE)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"boxes": "b"}, "detections in here has no scores output"),
        ({"boxes": "b", "scores": "s", "iou": 0.5}, "detections in here has unknown key(s) 'iou'"),
        ({"boxes": "b", "scores": "s", "lables": "l"}, "unknown key(s) 'lables' (did you mean 'labels'?)"),
        ({"boxes": "b", "scores": "s", "format": "yolo"}, "format must be one of xyxy, xywh, cxcywh, got 'yolo'"),
        ({"boxes": "b", "scores": "s", "min_iou": 1.5}, "min_iou must be a number in 0..1, got 1.5"),
        ({"boxes": "b", "scores": "s", "max_unmatched": -1}, "max_unmatched must be an int >= 0, got -1"),
        ([{"boxes": "a", "scores": "b"}, {"boxes": "c", "scores": "d"}], "two detection heads are named alike"),
        ("boxes", "detections must be a dict (one head) or a list of dicts"),
    ],
)
def test_detection_declarations_are_validated(value, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_detections(value, "here")
    assert message in str(info.value)


def test_sequence_declarations() -> None:
    assert parse_sequences(["tokens"], "here") == (("tokens", None),)
    assert parse_sequences({"tokens": 0.9}, "here") == (("tokens", 0.9),)
    with pytest.raises(SpecError, match="exact-match share of 'tokens' must be a number in 0..1, got 2"):
        parse_sequences({"tokens": 2}, "here")
