"""Detections compared as sets (``detections.py``, ``structured.py``): matching by IoU with scipy's
assignment solver, what is judged per pair and what counts as unmatched, the declaration's
validation, and a YOLOS detector (random weights, built from a tiny config) against a backend
that returns its detections sorted by score."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from pytest_xframe import SpecError
from pytest_xframe.detections import iou_matrix, match, to_xyxy
from pytest_xframe.structured import DetectionRule, parse_detections, parse_sequences

RULE = DetectionRule(boxes="boxes", scores="scores", labels="labels", score_threshold=0.5, min_iou=0.9, max_score_delta=0.05)


def _dets(n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 50, (1, n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 20, (1, n, 2))], axis=-1).astype(np.float32)
    return {"boxes": boxes, "scores": rng.uniform(0.3, 1.0, (1, n)).astype(np.float32), "labels": rng.integers(0, 5, (1, n))}


def _permuted(dets: dict[str, np.ndarray], order: list[int]) -> dict[str, np.ndarray]:
    return {k: v[:, order] for k, v in dets.items()}


def test_reordered_detections_match_as_a_set() -> None:
    ref = _dets()
    found = match(ref, _permuted(ref, [5, 3, 1, 0, 2, 4]), RULE)
    assert found.failures(RULE) == [] and found.unmatched == 0 and found.min_iou == 1.0
    assert found.pairs == found.detections == int((ref["scores"] >= 0.5).sum())


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


DETECTOR = textwrap.dedent(
    """
    import numpy as np
    import pytest

    from conftest import Detector
    from pytest_xframe import Dim, TensorSpec

    IMAGES = [(image,) for image in np.random.default_rng(0).uniform(0, 1, (6, 3, 32, 32)).astype(np.float32)]
    SPEC = [TensorSpec((Dim("batch", 1, 2), 3, 32, 32), low=0.0, high=1.0)]
    HEAD = {"boxes": "boxes", "scores": "scores", "labels": "labels", "format": "cxcywh", "score_threshold": 0.4}
    pytestmark = pytest.mark.xframe_parity(backends=["onnxruntime", "onnxruntime-sorted"], data=IMAGES, max_examples=3,
                                           exporter="torchscript")

    def test_as_sets(xframe):
        xframe.check(Detector(), SPEC, detections=HEAD)

    def test_element_by_element(xframe):
        xframe.check(Detector(), SPEC)
    """
)


def test_a_detector_whose_backend_sorts_its_detections_passes_as_sets(data_pytester: pytest.Pytester) -> None:
    pytest.importorskip("transformers")
    data_pytester.makepyfile(DETECTOR)
    result = data_pytester.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_element_by_element?onnxruntime-sorted?*", "Detector: outputs differ from torch on onnxruntime-sorted", "*output 'boxes' float32[[]1, 8, 4[]]: fails its policy*"]
    )
    records = {(c["test"].split("::")[1].split("[")[0], c["backend"]): c for c in json.loads((data_pytester.path / "report.json").read_text())["checks"]}
    for backend in ("onnxruntime", "onnxruntime-sorted"):
        record = records[("test_as_sets", backend)]
        assert [o["name"] for o in record["outputs"]] == ["detections"]
        figures = record["data"]["outputs"]["detections"]["detections"]
        assert figures["pairs"] >= 6 and figures["unmatched"] == 0 and figures["label_mismatches"] == 0 and figures["min_iou"] > 0.999, figures
    result.stdout.fnmatch_lines(["    detections over the data (6 items of a list): * matched detection pair(s), IoU median 1, worst 1 (item *), *0 unmatched*"])


def test_an_ort_model_of_transposed_convolutions_quantizes_nothing_dynamically(tmp_path) -> None:
    """onnxruntime's dynamic quantizer has no ConvTranspose kernel, and a graph without a Conv is
    quantized dynamically: the model keeps its weights in float, and the count says why."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from pytest_xframe.backends import Prepared
    from pytest_xframe.backends.onnxruntime_int8 import QUANTIZED_NAME, mode, quantization_count
    from pytest_xframe.export import OnnxArtifact

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 8, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])],
        [weight],
    )
    source = tmp_path / "model.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, source)
    assert mode(model) == "dynamic"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(tmp_path / QUANTIZED_NAME), weight_type=QuantType.QInt8)
    artifact = OnnxArtifact(path=source, exporter="torchscript", opset=17, input_names=("x",), output_names=("y",), seconds=0.0)
    count = quantization_count(Prepared(None, 0.0, 0.0, converted_path=tmp_path), artifact)
    assert (count.quantized, count.total, count.total_bytes) == (0, 1, 8 * 8 * 3 * 3 * 4)
    assert count.reason == "its weights feed ConvTranspose, which onnxruntime.quantization (dynamic) leaves in float"
