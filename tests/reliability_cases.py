"""Bad inputs and injected faults for tests/e2e/test_reliability.py: one row per case.

Imported by the outer test (expected outcomes) and copied into the inner pytester project (the
cases themselves). Each row builds its model and inputs inside the test, so a spec that refuses
itself (``Dim("n", 5, 1)``) fails where a user's test would.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.utils.parametrize
from torch import nn

from pytest_xframe import Dim, TensorSpec


@dataclass(frozen=True)
class Case:
    id: str
    model: Callable[[], Any]
    inputs: Callable[[], Any]
    #: the error's class name, or "passed" for a case that must pass (a warning at most)
    kind: str
    #: text the message must contain
    says: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_refuses(self) -> bool:
        """The TensorSpec or Dim refuses itself where the test builds it, before any check."""
        return self.id in SPEC_REFUSES


def lin(d_in: int = 3, d_out: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(d_in, d_out).eval()


def spec(*shape: Any, **kw: Any) -> Callable[[], list[TensorSpec]]:
    return lambda: [TensorSpec(shape, **kw)]


class Returns(nn.Module):
    """forward returns ``value(x)``: non-tensor outputs, odd structures."""

    def __init__(self, value: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):
        return self.value(x)


class Raises(nn.Module):
    """forward raises ``exc`` (when ``when(x)``): injected faults."""

    def __init__(self, exc: Callable[[], BaseException], when: Callable[[torch.Tensor], bool] = lambda x: True) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.exc, self.when = exc, when

    def forward(self, x):
        if self.when(x):
            raise self.exc()
        return self.lin(x)


class Counter(nn.Module):
    """Keeps running statistics by hand: forward writes a buffer and an attribute."""

    def __init__(self, feeds_output: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 3)
        self.register_buffer("n", torch.zeros(()))
        self.calls = 0
        self.feeds_output = feeds_output

    def forward(self, x):
        self.n.add_(1)
        self.calls += 1
        return self.lin(x) + (self.n if self.feeds_output else 0)


class ParamWriter(nn.Module):
    """Writes a parameter its output does not read (an in-place update kept by hand)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.momentum = nn.Parameter(torch.zeros(2), requires_grad=False)

    def forward(self, x):
        self.momentum.add_(1.0)
        return self.lin(x)


_GLOBAL = [0]


class GlobalCounter(nn.Module):
    def forward(self, x):
        _GLOBAL[0] += 1
        return x * _GLOBAL[0]


class Noisy(nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)


class AlwaysDropout(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5, training=True)


class NoisyOnSomeSizes(nn.Module):
    """Deterministic at the export's example size, random at others: caught on the failing input."""

    def forward(self, x):
        return x if x.shape[0] == 2 else x + torch.rand_like(x)


class FrozenCounter(Counter):
    """Writes its state and mismatches: TorchScript freezes float(x.sum()) at the example's value."""

    def forward(self, x):
        self.n.add_(1)
        return x + float(x.sum())


class KwOnly(nn.Module):
    def forward(self, x, *, scale):
        return x * scale


class StarArgs(nn.Module):
    def forward(self, *xs):
        return sum(xs)


class StarKwargs(nn.Module):
    def forward(self, x, **extra):
        return x


class BadRepr(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class TwoIn(nn.Module):
    def forward(self, a, b):
        return a + b


class StateChanger(nn.Module):
    """A correct model whose forward also changes its own state by ``change(self)``: the check must
    pass, name the change in a ModelStateWarning and leave the model as it was."""

    def __init__(self, change: Callable[[nn.Module], Any]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.seen: list[Any] = []
        self.change = change

    def forward(self, x):
        self.change(self)
        return self.lin(x.to(self.lin.weight.dtype)).float()


def _double(m: nn.Module) -> None:
    m.double()


def _freeze(m: nn.Module) -> None:
    m.lin.weight.requires_grad_(False)


def _hook(m: nn.Module) -> None:
    m.lin.register_forward_hook(lambda module, args, out: None)


def _kwargs_pre_hook(m: nn.Module) -> None:
    m.lin.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True)


def _global_hook(m: nn.Module) -> None:
    nn.modules.module.register_module_forward_hook(lambda module, args, out: None)


def _state_dict_hook(m: nn.Module) -> None:
    m.register_state_dict_pre_hook(lambda module, prefix, keep_vars: None)


def _replace_bias(m: nn.Module) -> None:
    m.lin.bias = nn.Parameter(m.lin.bias.detach().clone())


def _new_buffer(m: nn.Module) -> None:
    m.register_buffer("cache", torch.ones(2))


def _new_submodule(m: nn.Module) -> None:
    m.extra = nn.Identity()


def _remember(m: nn.Module) -> None:
    m.seen.append(1)


def _new_attribute(m: nn.Module) -> None:
    m.warmed_up = True


class Same(nn.Module):
    """A parametrization that leaves the weight as it is."""

    def forward(self, w):
        return w


def _parametrize(m: nn.Module) -> None:
    torch.nn.utils.parametrize.register_parametrization(m.lin, "weight", Same())


def _set_grad(m: nn.Module) -> None:
    m.lin.weight.grad = torch.zeros_like(m.lin.weight)


def _train(m: nn.Module) -> None:
    m.train()


def _backward_hook(m: nn.Module) -> None:
    m.lin.register_full_backward_hook(lambda module, grad_in, grad_out: None)


class InPlaceInput(nn.Module):
    """Deterministic, but writes its input in place."""

    def forward(self, x):
        x.mul_(2)
        return x + 1


class InPlaceTwoInputs(nn.Module):
    def forward(self, a, b):
        a.add_(b)
        b.zero_()
        return a * 2


class Scaled(nn.Module):
    """The same weights in every instance; ``scale``, a plain attribute, sets what forward returns."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.scale = scale

    def forward(self, x):
        return self.lin(x) * self.scale


class ComplexOut(nn.Module):
    def forward(self, x):
        return torch.complex(x, x * 2), x + 1


class Classes(nn.Module):
    """Three-class logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x)


def eval_(cls: type, *args: Any) -> nn.Module:
    return cls(*args).eval()


def meta_linear() -> nn.Module:
    with torch.device("meta"):
        return nn.Linear(3, 2).eval()


def with_dropout() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)).train()


def oom() -> BaseException:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


SPEC = "forward failed on an input drawn from the spec"
ORT = {"backends": ["onnxruntime"], "max_examples": 3}

CASES = [
    # the user's forward refuses what the spec draws: a SpecError, not torch's traceback
    Case("float-into-embedding", lambda: nn.Embedding(10, 4).eval(), spec(3), "SpecError", SPEC),
    Case("wrong-feature-size", lin, spec(2, 4), "SpecError", SPEC),
    Case("conv-wrong-rank", lambda: nn.Conv2d(3, 4, 3).eval(), spec(5, 5), "SpecError", SPEC),
    Case("float64-tensor-into-float32", lin, lambda: [np.zeros((2, 3))], "SpecError", "Double"),
    Case("fails-on-some-draws", lambda: eval_(Raises, lambda: ValueError("n must be 2"), lambda x: x.shape[0] != 2),
         lambda: [TensorSpec((Dim("n", 1, 6), 3))], "SpecError", SPEC, {"max_examples": 5}),
    # outputs that are not tensors
    Case("none-output", lambda: eval_(Returns, lambda x: (x, None)), spec(3), "SpecError", "output[1] is NoneType"),
    Case("string-output", lambda: eval_(Returns, lambda x: {"y": x, "label": "cat"}), spec(3), "SpecError", "output['label'] is str"),
    Case("int-dict-key", lambda: eval_(Returns, lambda x: {0: x}), spec(3), "SpecError", "non-string key 0"),
    Case("python-float-output", lambda: eval_(Returns, lambda x: float(x.sum())), spec(3), "SpecError", "output is float"),
    # the model itself
    Case("not-a-module", lambda: (lambda x: x), spec(3), "SpecError", "needs a torch.nn.Module"),
    Case("training-mode-plain", lambda: nn.Linear(3, 2), spec(3), "SpecError", "it has no dropout or batch-norm layer"),
    Case("training-mode-dropout", with_dropout, spec(3), "SpecError", "train-only layers (Dropout at 1)"),
    Case("meta-device", meta_linear, spec(3), "SpecError", "meta device"),
    # torch is not deterministic: named, never blamed on the export
    Case("rand-like", lambda: Noisy().eval(), spec(4), "NondeterminismError", "not deterministic"),
    Case("functional-dropout", lambda: AlwaysDropout().eval(), spec(16), "NondeterminismError", "elements differ between the runs"),
    Case("global-counter", lambda: GlobalCounter().eval(), spec(3, low=1, high=2), "NondeterminismError", "not deterministic"),
    Case("buffer-counter-in-output", lambda: Counter(feeds_output=True).eval(), spec(3), "NondeterminismError", "forward changes the model's own state: buffer n"),
    Case("noise-on-some-sizes", lambda: NoisyOnSomeSizes().eval(), lambda: [TensorSpec((Dim("n", 1, 4), 8))], "NondeterminismError",
         "not deterministic", {"exporter": "torchscript", "max_examples": 5}),
    Case("stateful-and-mismatching", lambda: FrozenCounter().eval(), spec(3), "ParityError", "note: forward changes the model's own state (buffer n)",
         {"exporter": "torchscript"}),
    # faults in forward
    Case("memory-error", lambda: eval_(Raises, MemoryError), spec(3), "ResourceError", "out of memory"),
    Case("memory-error-drawing", lin, spec(10**6, 10**6), "ResourceError", "out of memory in the check", {"max_input_bytes": 10**13}),
    Case("torch-oom", lambda: eval_(Raises, oom), spec(3), "ResourceError", "OutOfMemoryError"),
    # faults in a backend (plugin backends registered by the inner conftest, on the ONNX export)
    Case("backend-prepare-raises", lin, spec(3), "ConversionError", "backend fault-prepare raised while preparing the model", {"backends": ["fault-prepare"]}),
    Case("backend-memory-error", lin, spec(3), "ResourceError", "out of memory in fault-oom running the converted model", {"backends": ["fault-oom"]}),
    Case("backend-tf-oom", lin, spec(3), "ResourceError", "ResourceExhaustedError: OOM when allocating", {"backends": ["fault-tf-oom"]}),
    Case("backend-crash", lin, spec(3), "XframeError", "fault-crash raised while running the converted model", {"backends": ["fault-crash"]}),
    Case("backend-no-outputs", lin, spec(3), "ParityError", "outputs differ from torch on fault-no-outputs", {"backends": ["fault-no-outputs"]}),
    Case("backend-nan", lin, spec(3), "ParityError", "outputs differ from torch on fault-nan", {"backends": ["fault-nan"]}),
    Case("backend-wrong-shape", lin, spec(2, 3), "ParityError", "outputs differ from torch on fault-wrong-shape", {"backends": ["fault-wrong-shape"]}),
    # options
    Case("opset-99", lin, spec(3), "SpecError", "opset 99 is outside what the exporter supports (dynamo: 7..23; torchscript: 7..20)", {"opset": 99}),
    Case("opset-22-torchscript", lin, spec(3), "SpecError", "torchscript: 7..20", {"opset": 22, "exporter": "torchscript"}),
    Case("dynamo-cannot-reach-opset", lin, spec(3), "ExportError", "the dynamo exporter produced opset 18, not the requested opset 13",
         {"exporter": "dynamo", "opset": 13}),
    Case("opset-3", lin, spec(3), "SpecError", "opset must be an int >= 7", {"opset": 3}),
    Case("atol-nan", lin, spec(3), "SpecError", "atol must be a finite number >= 0", {"atol": float("nan")}),
    Case("atol-inf", lin, spec(3), "SpecError", "atol must be a finite number", {"atol": float("inf")}),
    Case("rtol-negative", lin, spec(3), "SpecError", "rtol must be a finite number >= 0", {"rtol": -1e-3}),
    Case("max-examples-negative", lin, spec(3), "SpecError", "max_examples must be an int >= 1", {"max_examples": -5}),
    Case("unknown-option", lin, spec(3), "SpecError", "unknown xframe option(s) 'atoll'", {"atoll": 1e-3}),
    Case("unknown-backend", lin, spec(3), "SpecError", "unknown backend(s) 'onnxruntim'", {"backends": ["onnxruntim"]}),
    Case("unknown-exporter", lin, spec(3), "SpecError", "unknown exporter 'jit'", {"exporter": "jit"}),
    Case("seed-string", lin, spec(3), "SpecError", "seed must be an int", {"seed": "abc"}),
    Case("opset-a-string", lin, spec(3), "SpecError", "opset must be an int >= 7, got '17'", {"opset": "17"}),
    Case("atol-a-string", lin, spec(3), "SpecError", "atol must be a finite number >= 0, got '1e-5'", {"atol": "1e-5"}),
    Case("equal-nan-a-string", lin, spec(3), "SpecError", "equal_nan must be True or False, got 'yes'", {"equal_nan": "yes"}),
    Case("name-not-a-string", lin, spec(3), "SpecError", "name must be a non-empty string, got 123", {"name": 123}),
    Case("no-backends", lin, spec(3), "SpecError", "(none given)", {"backends": []}),
    Case("max-input-bytes-zero", lin, spec(3), "SpecError", "max_input_bytes must be an int >= 1", {"max_input_bytes": 0}),
    # resource limits
    Case("dim-a-billion", lin, lambda: [TensorSpec((Dim("n", 1, 10**9), 3))], "SpecError", "over the limit of 256 MiB"),
    Case("max-input-bytes-option", lin, spec(64, 3), "SpecError", "768 bytes per example, over the limit of 512 bytes", {"max_input_bytes": 512}),
    # specs
    Case("dim-min-over-max", lin, lambda: [TensorSpec((Dim("n", 5, 1), 3))], "SpecError", "min > max"),
    Case("dim-negative-min", lin, lambda: [TensorSpec((Dim("n", -1, 3), 3))], "SpecError", "min must be >= 0"),
    Case("dim-bad-name", lin, lambda: [TensorSpec((Dim("batch size", 1, 3), 3))], "SpecError", "must be an identifier"),
    Case("dim-float-bound", lin, lambda: [TensorSpec((Dim("n", 1, 2.5), 3))], "SpecError", "bounds must be ints"),
    Case("dim-two-ranges", lambda: TwoIn().eval(), lambda: [TensorSpec((Dim("n", 1, 3),)), TensorSpec((Dim("n", 1, 4),))], "SpecError", "different bounds"),
    Case("dtype-typo", lin, lambda: [TensorSpec((3,), "flaot32")], "SpecError", "unknown dtype 'flaot32'"),
    Case("dtype-complex", lin, lambda: [TensorSpec((3,), "complex64")], "SpecError", "(complex64) is not supported"),
    Case("dtype-string", lin, lambda: [TensorSpec((3,), "U8")], "SpecError", "is not supported"),
    Case("low-nan", lin, lambda: [TensorSpec((3,), low=float("nan"))], "SpecError", "low must be a finite number"),
    Case("high-inf", lin, lambda: [TensorSpec((3,), high=float("inf"))], "SpecError", "high must be a finite number"),
    Case("low-over-high", lin, lambda: [TensorSpec((3,), low=2.0, high=1.0)], "SpecError", "low > high"),
    Case("int-without-bounds", lambda: nn.Embedding(5, 2).eval(), lambda: [TensorSpec((3,), "int64")], "SpecError", "needs low and high"),
    Case("int-bound-overflow", lambda: nn.Embedding(5, 2).eval(), lambda: [TensorSpec((3,), "int8", low=0, high=1000)], "SpecError", "outside what int8 holds"),
    Case("float16-bound-overflow", lin, lambda: [TensorSpec((3,), "float16", low=0, high=1e6)], "SpecError", "outside what float16 holds"),
    Case("negative-shape", lin, lambda: [TensorSpec((-1, 3))], "SpecError", "non-negative ints or Dim"),
    Case("float-shape", lin, lambda: [TensorSpec((2.0, 3))], "SpecError", "non-negative ints or Dim"),
    Case("bool-shape", lin, lambda: [TensorSpec((True, 3))], "SpecError", "non-negative ints or Dim"),
    Case("shape-not-sequence", lin, lambda: [TensorSpec(3)], "SpecError", "must be a sequence"),
    Case("huge-rank", lin, lambda: [TensorSpec((1,) * 40 + (3,))], "SpecError", "rank 41; at most 32"),
    # inputs against forward's signature
    Case("too-many-inputs", lin, lambda: [TensorSpec((3,)), TensorSpec((3,))], "SpecError", "2 input(s) given"),
    Case("too-few-inputs", lambda: TwoIn().eval(), spec(3), "SpecError", "1 input(s) given"),
    Case("unknown-input-name", lin, lambda: {"x": TensorSpec((3,))}, "SpecError", "unknown parameter(s): x"),
    Case("inputs-a-string", lin, lambda: "x", "SpecError", "inputs must be a list or dict"),
    Case("input-a-list-of-floats", lin, lambda: [[1.0, 2.0, 3.0]], "SpecError", "must be a TensorSpec, torch.Tensor or numpy.ndarray"),
    Case("string-array-input", lin, lambda: [np.array(["a", "b", "c"])], "SpecError", "input 'input' is an array of dtype <U1"),
    Case("star-args", lambda: StarArgs().eval(), lambda: [TensorSpec((3,)), TensorSpec((3,))], "SpecError", "StarArgs.forward takes *xs"),
    Case("star-kwargs", lambda: StarKwargs().eval(), lambda: {"x": TensorSpec((3,)), "y": TensorSpec((3,))}, "SpecError", "takes **extra"),
    # forward changes the model's own state: the check passes, names it, and the model is restored
    Case("forward-calls-double", lambda: eval_(StateChanger, _double), spec(3), "passed"),
    Case("forward-freezes-a-weight", lambda: eval_(StateChanger, _freeze), spec(3), "passed"),
    Case("forward-registers-hooks", lambda: eval_(StateChanger, _hook), spec(3), "passed", {"max_examples": 5}),
    Case("forward-registers-a-kwargs-pre-hook", lambda: eval_(StateChanger, _kwargs_pre_hook), spec(3), "passed"),
    Case("forward-registers-a-global-hook", lambda: eval_(StateChanger, _global_hook), spec(3), "passed"),
    Case("forward-registers-a-state-dict-hook", lambda: eval_(StateChanger, _state_dict_hook), spec(3), "passed"),
    Case("forward-replaces-a-parameter", lambda: eval_(StateChanger, _replace_bias), spec(3), "passed"),
    Case("forward-registers-a-buffer", lambda: eval_(StateChanger, _new_buffer), spec(3), "passed"),
    Case("forward-adds-a-submodule", lambda: eval_(StateChanger, _new_submodule), spec(3), "passed"),
    Case("forward-appends-to-a-list", lambda: eval_(StateChanger, _remember), spec(3), "passed"),
    Case("forward-sets-a-new-attribute", lambda: eval_(StateChanger, _new_attribute), spec(3), "passed"),
    Case("forward-parametrizes-a-weight", lambda: eval_(StateChanger, _parametrize), spec(3), "passed"),
    Case("forward-sets-a-grad", lambda: eval_(StateChanger, _set_grad), spec(3), "passed"),
    Case("forward-calls-train", lambda: eval_(StateChanger, _train), spec(3), "passed"),
    Case("forward-registers-a-backward-hook", lambda: eval_(StateChanger, _backward_hook), spec(3), "passed"),
    # correct models a check must not misjudge
    Case("forward-writes-its-input", lambda: InPlaceInput().eval(), spec(2, 3), "passed"),
    Case("forward-writes-both-inputs", lambda: InPlaceTwoInputs().eval(), lambda: [TensorSpec((3,)), TensorSpec((3,))], "passed"),
    Case("complex-output", lambda: ComplexOut().eval(), spec(2, 3), "passed"),
    # one class, the same weights, another setting: each instance gets its own export
    Case("same-weights-scale-2", lambda: Scaled(2.0).eval(), spec(3), "passed"),
    Case("same-weights-scale-3", lambda: Scaled(3.0).eval(), spec(3), "passed"),
    Case("torch-jit-script", lambda: torch.jit.script(lin()), spec(3), "passed"),
    Case("torch-jit-trace", lambda: torch.jit.trace(lin(), torch.zeros(1, 3)), spec(3), "passed"),
    # outputs whose names would not tell them apart
    Case("dict-empty-key", lambda: eval_(Returns, lambda x: {"": x + 1, "output": x * 2}), spec(3), "SpecError", "output[''] has an empty dict key"),
    Case("nested-key-collision", lambda: eval_(Returns, lambda x: {"a": {"b": x + 1}, "a.b": x * 2}), spec(3), "SpecError",
         "output['a']['b'] and output['a.b'] both flatten to the output name 'a.b'"),
    Case("tuple-in-dict-collision", lambda: eval_(Returns, lambda x: {"a": (x, x + 1), "a.1": x * 2}), spec(3), "SpecError",
         "output['a'][1] and output['a.1'] both flatten to the output name 'a.1'"),
    Case("output-named-like-the-input", lambda: eval_(Returns, lambda x: {"x": x + 1}), spec(3), "SpecError", "is named 'x', like the input 'x'"),
    # SystemExit and GeneratorExit in the user's code are its failures, not the session's end
    Case("system-exit-in-forward", lambda: eval_(Raises, lambda: SystemExit(3)), spec(3), "SpecError", "SystemExit: 3"),
    Case("sys-exit-on-some-draws", lambda: eval_(Raises, lambda: SystemExit("bad size"), lambda x: x.shape[0] != 2),
         lambda: [TensorSpec((Dim("n", 1, 6), 3))], "SpecError", "SystemExit: bad size", {"max_examples": 5}),
    Case("generator-exit-in-forward", lambda: eval_(Raises, GeneratorExit), spec(3), "SpecError", "GeneratorExit"),
    Case("backend-run-exits", lin, spec(3), "XframeError", "fault-exit raised while running the converted model", {"backends": ["fault-exit"]}),
    Case("backend-prepare-exits", lin, spec(3), "ConversionError", "backend fault-prepare-exit raised while preparing the model",
         {"backends": ["fault-prepare-exit"]}),
    # TorchScript modules export with the TorchScript exporter only
    Case("torch-jit-script-with-dynamo", lambda: torch.jit.script(lin()), spec(3), "SpecError",
         "a TorchScript module exports through the TorchScript exporter only", {"exporter": "dynamo"}),
    Case("torch-jit-script-into-litert-torch", lambda: torch.jit.script(lin()), spec(3), "SpecError",
         "converts the torch module itself with torch.export, which cannot take a TorchScript module", {"backends": ["litert-torch"]}),
    # specs and policies that cannot mean what they say
    Case("int-spec-fractional-bounds", lambda: nn.Embedding(5, 2).eval(), lambda: [TensorSpec((3,), "int64", low=0.5, high=3.5)], "SpecError",
         "has a fractional bound (low=0.5, high=3.5)"),
    Case("int-spec-fractional-high", lambda: nn.Embedding(5, 2).eval(), lambda: [TensorSpec((3,), "int64", low=0, high=2.5)], "SpecError",
         "has a fractional bound (high=2.5)"),
    Case("bool-spec-with-bounds", lambda: eval_(Returns, lambda x: x), lambda: [TensorSpec((3,), "bool", low=0, high=1)], "SpecError",
         "is bool: it draws False and True, so low=0 and high=1 cannot apply"),
    Case("topk-k-equals-classes", lambda: Classes().eval(), spec(2, 4), "SpecError", "judges top-3 agreement of output 'output', which has 3 classes",
         {"policy": {"topk": {"k": 3, "min_agreement": 0.9}}}),
    Case("topk-k-above-classes", lambda: Classes().eval(), spec(2, 4), "SpecError", "judges top-5 agreement of output 'output', which has 3 classes",
         {"policy": {"outputs": {"output": {"topk": {"k": 5, "min_agreement": 0.5}}}}}),
    # what must work
    Case("keyword-only-parameter", lambda: KwOnly().eval(), lambda: {"x": TensorSpec((3,)), "scale": TensorSpec((3,))}, "passed"),
    Case("numpy-int-shape-and-dims", lin, lambda: [TensorSpec((Dim("n", np.int64(1), np.int32(3)), np.int64(3)))], "passed"),
    Case("zero-size-dim", lin, spec(0, 3), "passed"),
    Case("dim-from-zero", lin, lambda: [TensorSpec((Dim("n", 0, 3), 3))], "passed"),
    Case("repr-raises", lambda: BadRepr().eval(), spec(3), "passed"),
    Case("forward-writes-a-buffer", lambda: Counter().eval(), spec(3), "passed"),
    Case("forward-writes-a-parameter", lambda: ParamWriter().eval(), spec(3), "passed"),
]

#: cases only the dynamo exporter can run (keyword-only forward parameters; dynamo's own opset; a
#: complex output, which TorchScript cannot export): a stack without onnxscript (tox's py311-tf215)
#: leaves them out, as one without litert-torch leaves out the case about it
DYNAMO_ONLY = {"keyword-only-parameter", "dynamo-cannot-reach-opset", "complex-output"}
LITERT_TORCH_ONLY = {"torch-jit-script-into-litert-torch"}
ALL_CASES = CASES
if importlib.util.find_spec("onnxscript") is None:
    CASES = [c for c in CASES if c.id not in DYNAMO_ONLY]
if importlib.util.find_spec("litert_torch") is None:
    CASES = [c for c in CASES if c.id not in LITERT_TORCH_ONLY]

BY_ID = {c.id: c for c in CASES}

SPEC_REFUSES = {
    "int-spec-fractional-bounds", "int-spec-fractional-high", "bool-spec-with-bounds",
    "dim-min-over-max", "dim-negative-min", "dim-bad-name", "dim-float-bound", "dtype-typo", "dtype-complex", "dtype-string",
    "low-nan", "high-inf", "low-over-high", "int-without-bounds", "int-bound-overflow", "float16-bound-overflow",
    "negative-shape", "float-shape", "bool-shape", "shape-not-sequence", "huge-rank",
}
