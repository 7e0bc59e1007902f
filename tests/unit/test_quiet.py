"""quiet.captured: what the frameworks print and log stays out of pytest's captured output."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from pytest_xframe.quiet import captured


def test_descriptors_streams_and_framework_loggers_are_diverted(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # the loggers' own levels too (absl's is WARNING once TensorFlow has set it up), restored after
    caplog.set_level(logging.DEBUG, logger="torch.onnx._internal.exporter")
    caplog.set_level(logging.DEBUG, logger="absl")
    with captured() as out:
        os.write(1, b"Torch IR graph at exception: graph(%x)\n")  # C++ writes straight to the descriptor
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\n")
        print("python stdout")
        print("python stderr", file=sys.stderr)
        logging.getLogger("torch.onnx._internal.exporter").warning("torchvision is not installed")
        logging.getLogger("absl").info("Writing fingerprint")
        logging.getLogger("torch.__trace").debug("")  # torch's structured trace records carry no text
        logging.getLogger("my_project").warning("the user's own logger")
    shown = capfd.readouterr()
    assert shown.out == "" and shown.err == ""
    for line in ("Torch IR graph at exception", "oneDNN custom operations", "python stdout", "python stderr",
                 "WARNING torch.onnx._internal.exporter: torchvision is not installed", "INFO absl: Writing fingerprint"):
        assert line in out.text
    assert "my_project" not in out.text  # not a framework: left to pytest
    assert [r.name for r in caplog.records] == ["my_project"]
    assert out.section().startswith("\n\n--- what the frameworks printed and logged meanwhile ---\n")


def test_everything_is_restored_and_the_text_kept_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    torch_logger = logging.getLogger("torch")
    handlers, propagate = list(torch_logger.handlers), torch_logger.propagate
    stdout = sys.stdout
    with pytest.raises(RuntimeError), captured() as out:
        os.write(2, b"before the error\n")
        torch_logger.addHandler(added := logging.NullHandler())  # a framework configuring itself meanwhile
        raise RuntimeError("boom")
    assert "before the error" in out.text
    assert sys.stdout is stdout and torch_logger.propagate == propagate
    assert torch_logger.handlers == [*handlers, added]  # the framework's own handler stays
    torch_logger.removeHandler(added)
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"


def test_a_quiet_block_adds_no_section() -> None:
    with captured() as out:
        pass
    assert out.text == "" and out.section() == ""
