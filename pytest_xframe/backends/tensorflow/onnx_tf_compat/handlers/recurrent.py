"""Recurrent ops: RNN, GRU and LSTM as small ``tf.scan`` implementations of the ONNX equations.

onnx-tf's own need Keras 2 cells (its LSTM uses ``LSTMStateTuple``, gone with Keras 3), share one
cell between the RNN nodes of a model, and its GRU rejects ``linear_before_reset=1`` (what
PyTorch exports). These need no Keras at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .common import import_tf, input_tensor, str_attr

__all__ = ["gru_7", "lstm_7", "rnn_7"]

Activation = Callable[[Any], Any]


def _default(value: float | None, default: float) -> float:
    return default if value is None else value


def _parametric_activation(key: str, alpha: float | None, beta: float | None) -> Activation | None:
    """The ONNX RNN activations that take ``activation_alpha`` / ``activation_beta``."""
    tf = import_tf()
    if key == "leakyrelu":
        return lambda v: tf.nn.leaky_relu(v, alpha=_default(alpha, 0.01))
    if key == "hardsigmoid":
        a, b = _default(alpha, 0.2), _default(beta, 0.5)
        return lambda v: tf.clip_by_value(a * v + b, 0.0, 1.0)
    if key == "elu":
        a = _default(alpha, 1.0)
        return lambda v: tf.where(v >= 0, v, a * (tf.exp(v) - 1.0))
    if key == "affine":
        a, b = _default(alpha, 1.0), _default(beta, 0.0)
        return lambda v: a * v + b
    if key == "scaledtanh":
        a, b = _default(alpha, 1.0), _default(beta, 1.0)
        return lambda v: a * tf.tanh(b * v)
    if key == "thresholdedrelu":
        a = _default(alpha, 1.0)
        return lambda v: tf.where(v > a, v, tf.zeros_like(v))
    return None


def _rnn_activation(name: str, alpha: float | None, beta: float | None) -> Activation:
    tf = import_tf()
    simple = {
        "sigmoid": tf.sigmoid,
        "tanh": tf.tanh,
        "relu": tf.nn.relu,
        "softsign": tf.nn.softsign,
        "softplus": tf.nn.softplus,
    }
    key = name.lower()
    fn = simple.get(key) or _parametric_activation(key, alpha, beta)
    if fn is None:
        raise NotImplementedError(f"RNN activation {name!r} is not supported")
    return fn


def _rnn_activations(node: Any, defaults: Sequence[str], num_directions: int) -> list[list[Activation]]:
    """Per direction, the activation functions (ONNX lists them direction after direction)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in node.attrs.get("activations", [])]
    alphas = list(node.attrs.get("activation_alpha", []))
    betas = list(node.attrs.get("activation_beta", []))
    k = len(defaults)
    names = names or list(defaults) * num_directions
    if len(names) == k and num_directions == 2:
        names = names * 2
    out = []
    for d in range(num_directions):
        fns = []
        for i in range(k):
            j = d * k + i
            alpha = alphas[j] if j < len(alphas) else None
            beta = betas[j] if j < len(betas) else None
            fns.append(_rnn_activation(names[j], alpha, beta))
        out.append(fns)
    return out


@dataclass
class _RnnInputs:
    """The inputs and attributes RNN, GRU and LSTM share, with absent optional inputs filled in."""

    node: Any
    kwargs: dict[str, Any]
    #: [seq, batch, input] whatever the layout
    x: Any
    w: Any
    r: Any
    b: Any
    hidden: int
    direction: str
    num_directions: int
    layout: int
    clip: float | None
    #: the batch size, a scalar tensor
    batch: Any

    def initial(self, index: int) -> Any:
        """The initial state given as input ``index`` ([dirs, batch, hidden]), zeros if absent."""
        tf = import_tf()
        given = input_tensor(self.node, self.kwargs, index)
        if given is None:
            return tf.zeros(tf.stack([self.num_directions, self.batch, self.hidden]), self.x.dtype)
        return tf.transpose(given, [1, 0, 2]) if self.layout == 1 else given

    def reverse(self, d: int) -> bool:
        """Whether direction ``d`` runs backwards in time."""
        return self.direction == "reverse" or d == 1


def _check_sequence_lens(node: Any, kwargs: dict[str, Any], x: Any) -> None:
    """Only full-length sequences are implemented: a constant ``sequence_lens`` equal to seq."""
    seq_lens = input_tensor(node, kwargs, 4)
    if seq_lens is None:
        return
    static = import_tf().get_static_value(seq_lens)
    if static is None or x.shape[0] is None or any(int(v) != int(x.shape[0]) for v in static.reshape(-1)):
        raise NotImplementedError(
            f"{node.op_type} node {node.name!r}: sequence_lens shorter than the sequence "
            "(padded batches) is not supported"
        )


def _rnn_prepare(node: Any, kwargs: dict[str, Any], gates: int) -> _RnnInputs:
    """Shared input handling of RNN/LSTM/GRU: layout, direction, missing optional inputs."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    layout = int(node.attrs.get("layout", 0))
    if layout == 1:  # [batch, seq, ...] -> [seq, batch, ...]
        x = tf.transpose(x, [1, 0, 2])
    r = kwargs["tensor_dict"][node.inputs[2]]
    hidden = int(node.attrs.get("hidden_size", r.shape[-1]))
    direction = str_attr(node, "direction", "forward")
    num_directions = 2 if direction == "bidirectional" else 1
    b = input_tensor(node, kwargs, 3)
    if b is None:
        b = tf.zeros([num_directions, 2 * gates * hidden], x.dtype)
    _check_sequence_lens(node, kwargs, x)
    return _RnnInputs(node, kwargs, x, kwargs["tensor_dict"][node.inputs[1]], r, b, hidden, direction,
                      num_directions, layout, node.attrs.get("clip"), tf.shape(x)[1])


def _rnn_outputs(node: Any, ys: list[Any], finals: list[list[Any]], layout: int) -> list[Any]:
    """Stack per-direction results into ONNX's Y [seq, dirs, batch, H] and Y_h/Y_c [dirs, batch, H]."""
    tf = import_tf()
    y = tf.stack(ys, axis=1)
    states = [tf.stack(list(s), axis=0) for s in zip(*finals)]
    if layout == 1:
        y = tf.transpose(y, [2, 0, 1, 3])  # [batch, seq, dirs, H]
        states = [tf.transpose(s, [1, 0, 2]) for s in states]
    return [y, *states][: len(node.outputs)]


def _clip(v: Any, clip: float | None) -> Any:
    """ONNX RNN ``clip``: bounds the inputs of the activations."""
    return v if clip is None else import_tf().clip_by_value(v, -clip, clip)


def _run_direction(step: Callable[[Any, Any], Any], x: Any, init: Any, reverse: bool) -> tuple[Any, Any]:
    """Scan ``step`` over time; returns all outputs (in input time order) and the last state."""
    tf = import_tf()
    xs = tf.reverse(x, [0]) if reverse else x
    states = tf.scan(step, xs, initializer=init)
    h_all = states[0] if isinstance(states, (tuple, list)) else states
    last = tuple(s[-1] for s in states) if isinstance(states, (tuple, list)) else (states[-1],)
    if reverse:
        h_all = tf.reverse(h_all, [0])
    return h_all, last


def _lstm_step(w: Any, r: Any, b: Any, peep: Any, acts: list[Activation], clip: float | None,
               hidden: int) -> Callable[[Any, Any], Any]:
    """One LSTM time step for one direction: ``(h, c), x_t -> (h', c')``; ONNX gate order i, o, f, c."""
    tf = import_tf()
    f_act, g_act, h_act = acts
    wt, rt, bias = tf.transpose(w), tf.transpose(r), b[: 4 * hidden] + b[4 * hidden :]
    pi, po, pf = (None, None, None) if peep is None else tf.split(peep, 3)

    def step(state: Any, xt: Any) -> Any:
        h, c = state
        zi, zo, zf, zc = tf.split(tf.matmul(xt, wt) + tf.matmul(h, rt) + bias, 4, axis=-1)
        if pi is not None:
            zi, zf = zi + pi * c, zf + pf * c
        i, f, g = f_act(_clip(zi, clip)), f_act(_clip(zf, clip)), g_act(_clip(zc, clip))
        c_new = f * c + i * g
        if po is not None:
            zo = zo + po * c_new
        return (f_act(_clip(zo, clip)) * h_act(c_new), c_new)

    return step


def _gru_step(w: Any, r: Any, b: Any, acts: list[Activation], clip: float | None, hidden: int,
              linear_before_reset: bool) -> Callable[[Any, Any], Any]:
    """One GRU time step for one direction: ``h, x_t -> h'``; ONNX gate order z, r, h."""
    tf = import_tf()
    f_act, g_act = acts
    w_zr, w_h = tf.split(w, [2 * hidden, hidden], axis=0)
    r_zr, r_h = tf.split(r, [2 * hidden, hidden], axis=0)
    wb, rb = b[: 3 * hidden], b[3 * hidden :]
    b_zr, wb_h, rb_h = wb[: 2 * hidden] + rb[: 2 * hidden], wb[2 * hidden :], rb[2 * hidden :]

    def step(h: Any, xt: Any) -> Any:
        zr = tf.matmul(xt, w_zr, transpose_b=True) + tf.matmul(h, r_zr, transpose_b=True) + b_zr
        z, r_gate = tf.split(f_act(_clip(zr, clip)), 2, axis=-1)
        x_part = tf.matmul(xt, w_h, transpose_b=True) + wb_h
        if linear_before_reset:
            hh = x_part + r_gate * (tf.matmul(h, r_h, transpose_b=True) + rb_h)
        else:
            hh = x_part + tf.matmul(r_gate * h, r_h, transpose_b=True) + rb_h
        hh = g_act(_clip(hh, clip))
        return (1.0 - z) * hh + z * h

    return step


def _rnn_step(w: Any, r: Any, b: Any, act: Activation, clip: float | None, hidden: int) -> Callable[[Any, Any], Any]:
    """One plain RNN time step for one direction: ``h' = f(x W^T + h R^T + Wb + Rb)``."""
    tf = import_tf()
    wt, rt, bias = tf.transpose(w), tf.transpose(r), b[:hidden] + b[hidden:]

    def step(h: Any, xt: Any) -> Any:
        return act(_clip(tf.matmul(xt, wt) + tf.matmul(h, rt) + bias, clip))

    return step


def rnn_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """RNN-7/14 as a ``tf.scan``; onnx-tf's needs Keras 2 cells."""
    p = _rnn_prepare(node, kwargs, gates=1)
    h0 = p.initial(5)
    acts = _rnn_activations(node, ["Tanh"], p.num_directions)
    ys, finals = [], []
    for d in range(p.num_directions):
        step = _rnn_step(p.w[d], p.r[d], p.b[d], acts[d][0], p.clip, p.hidden)
        y, last = _run_direction(step, p.x, h0[d], reverse=p.reverse(d))
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p.layout)


def lstm_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """LSTM-7/14 as a ``tf.scan`` over the ONNX equations; needs no Keras (gone LSTMStateTuple)."""
    p = _rnn_prepare(node, kwargs, gates=4)
    if node.attrs.get("input_forget", 0):
        raise NotImplementedError(f"LSTM node {node.name!r}: input_forget=1 is not supported")
    peep = input_tensor(node, kwargs, 7)
    h0, c0 = p.initial(5), p.initial(6)
    acts = _rnn_activations(node, ["Sigmoid", "Tanh", "Tanh"], p.num_directions)
    ys, finals = [], []
    for d in range(p.num_directions):
        step = _lstm_step(p.w[d], p.r[d], p.b[d], None if peep is None else peep[d], acts[d], p.clip, p.hidden)
        y, last = _run_direction(step, p.x, (h0[d], c0[d]), reverse=p.reverse(d))
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p.layout)


def gru_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """GRU-7/14 as a ``tf.scan``, including ``linear_before_reset=1`` (what PyTorch exports)."""
    p = _rnn_prepare(node, kwargs, gates=3)
    h0 = p.initial(5)
    acts = _rnn_activations(node, ["Sigmoid", "Tanh"], p.num_directions)
    lbr = bool(node.attrs.get("linear_before_reset", 0))
    ys, finals = [], []
    for d in range(p.num_directions):
        step = _gru_step(p.w[d], p.r[d], p.b[d], acts[d], p.clip, p.hidden, lbr)
        y, last = _run_direction(step, p.x, h0[d], reverse=p.reverse(d))
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p.layout)
