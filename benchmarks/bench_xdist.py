"""Serial vs pytest-xdist on a suite of several models, cold and warm conversion cache.

Writes a throw-away project with one parity test per model (``--suite small``: six tiny models;
``mid``: four of the size model teams ship), then times, each in a fresh process: serial with an
empty cache, ``-n 2`` with an empty cache, serial warm, ``-n 2`` warm. Prints a table with the
wall times and the speed-up of ``-n 2`` over serial.

    python benchmarks/bench_xdist.py [--suite small|mid] [--examples 20] [--workers 2] [--repeat 3] [--threads auto|0|N] [--backends LIST]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SUITE = textwrap.dedent(
    '''
    import pytest, torch
    from torch import nn
    from pytest_xframe import Dim, TensorSpec

    B = Dim("batch", 1, 4)

    def mlp():
        return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 1), nn.Sigmoid())

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def conv1d():
        return nn.Sequential(nn.Conv1d(4, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 8, 3), nn.Tanh())

    def ln_mlp():
        return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 8), nn.Softmax(-1))

    def deep_cnn():
        layers = []
        for c_in, c_out in ((3, 16), (16, 32), (32, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def upsample():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 2, 1))

    MODELS = {
        "mlp": (mlp, (B, 20)), "cnn": (cnn, (B, 3, 32, 32)), "conv1d": (conv1d, (B, 4, 64)),
        "ln_mlp": (ln_mlp, (B, 16)), "deep_cnn": (deep_cnn, (B, 3, 32, 32)), "upsample": (upsample, (B, 3, 16, 16)),
    }

    @pytest.mark.parametrize("name", list(MODELS))
    @pytest.mark.xframe_parity(exporter="torchscript", opset=13, atol=1e-4, rtol=1e-3)
    def test_model(xframe, name):
        torch.manual_seed(0)
        make, shape = MODELS[name]
        xframe.check(make().eval(), inputs=[TensorSpec(shape)])
    '''
)

#: models of the size model teams ship, each check a few seconds: ResNet-18 (bench_models), a
#: MobileNetV2-style stack, a 2-layer bidirectional LSTM and a 2-layer transformer encoder
#: (dynamo exporter, as the TorchScript one freezes its sequence length)
MID_SUITE = textwrap.dedent(
    '''
    import sys
    import pytest, torch
    from torch import nn
    from pytest_xframe import Dim, TensorSpec

    sys.path.insert(0, BENCHMARKS)
    from bench_models import ResNet18, _trained_statistics

    B = Dim("batch", 1, 4)
    S = Dim("seq", 8, 32)

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, c_out, stride, expand=4):
            super().__init__()
            hidden = c_in * expand
            self.use_res = stride == 1 and c_in == c_out
            self.body = nn.Sequential(
                nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            y = self.body(x)
            return x + y if self.use_res else y

    def mobilenet():
        blocks = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        for c_in, c_out, stride in ((32, 32, 1), (32, 48, 2), (48, 48, 1), (48, 96, 2), (96, 96, 1), (96, 128, 2)):
            blocks.append(InvertedResidual(c_in, c_out, stride))
        model = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 100))
        return _trained_statistics(model, (3, 96, 96), steps=2)

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out)

    def transformer():
        layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
        return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    MODELS = {
        "resnet18": (lambda: _trained_statistics(ResNet18(), (3, 96, 96), steps=1), (B, 3, 96, 96), "torchscript", 1e-3),
        "mobilenet": (mobilenet, (B, 3, 96, 96), "torchscript", 1e-4),
        "bilstm": (BiLSTM, (B, S, 32), "torchscript", 1e-4),
        "transformer": (transformer, (B, S, 64), "dynamo", 1e-4),
    }

    @pytest.mark.parametrize("name", list(MODELS))
    @pytest.mark.xframe_parity(opset=17, rtol=1e-3)
    def test_model(xframe, name):
        torch.manual_seed(0)
        make, shape, exporter, atol = MODELS[name]
        xframe.check(make().eval(), inputs=[TensorSpec(shape)], exporter=exporter, atol=atol)
    '''
).replace("BENCHMARKS", repr(str(Path(__file__).resolve().parent)))

SUITES = {"small": (SUITE, "6 small models"), "mid": (MID_SUITE, "4 mid-size models (ResNet-18, MobileNetV2-style, BiLSTM, transformer)")}


def run(project: Path, cache: Path, examples: int, workers: int, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of pytest with every worker it waited for (user + sys)."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            f"--xframe-cache-dir={cache}", f"--xframe-max-examples={examples}", *extra]
    if workers > 1:
        args += ["-n", str(workers)]
    start = time.perf_counter()
    with open(project / "last.log", "w") as log:
        proc = subprocess.Popen(args, cwd=project, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"pytest failed ({' '.join(args[3:])}):\n{(project / 'last.log').read_text()[-4000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=SUITES, default="small", help="small: 6 tiny models; mid: 4 mid-size ones")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repetitions; medians are shown")
    parser.add_argument("--threads", default=None, help="pass --xframe-threads=VALUE to every run (default: the plugin's auto)")
    parser.add_argument("--backends", default=None, help="pass --xframe-backends=LIST (default: onnxruntime,tensorflow)")
    options = parser.parse_args()
    extra = (f"--xframe-threads={options.threads}",) if options.threads is not None else ()
    extra += (f"--xframe-backends={options.backends}",) if options.backends else ()
    runs = [("serial", 1), (f"-n {options.workers}", options.workers)]
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_suite.py").write_text(SUITES[options.suite][0])
        for rep in range(options.repeat):
            caches = {label: project / f"cache-{rep}-{workers}" for label, workers in runs}
            for phase in ("cold", "warm"):  # serial and -n alternate, so load drifts hit both
                for label, workers in runs:
                    figures.setdefault((label, phase), []).append(run(project, caches[label], options.examples, workers, extra))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in figures.items()}
    print(f"{SUITES[options.suite][1]} x {options.backends or 'onnxruntime,tensorflow'}, {options.examples} examples each, {os.cpu_count()} CPUs, threads "
          f"{options.threads or 'auto'}; {options.repeat} run(s), medians; each run a fresh process")
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"{'run':<8} {'cold wall s':>12} {'cold cpu s':>11} {'warm wall s':>12} {'warm cpu s':>11}")
    for label, _ in runs:
        (cw, cc), (ww, wc) = med[(label, "cold")], med[(label, "warm")]
        print(f"{label:<8} {cw:>12.1f} {cc:>11.1f} {ww:>12.1f} {wc:>11.1f}")
    serial, parallel = runs[0][0], runs[1][0]
    print(f"speed-up of {parallel} over serial (wall): cold {med[(serial, 'cold')][0] / med[(parallel, 'cold')][0]:.2f}x, "
          f"warm {med[(serial, 'warm')][0] / med[(parallel, 'warm')][0]:.2f}x")


if __name__ == "__main__":
    main()
