"""The ONNX graph seen through the torch module tree: which nodes each module call holds.

A node's module scope is read from its name (torchscript: ``/layer1/layer1.0/conv/Conv``, calls
numbered ``name_1``, ``name_2``) or from its ``pkg.torch.onnx.name_scopes`` metadata (dynamo, one
scope for all calls of a module, shared out by connected pieces).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...export.onnx_graph import topological_nodes

__all__ = ["GraphScopes", "scope_graph"]


_CALL_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def _unqualified(qualified: str) -> str:
    """What the torchscript exporter writes for a module in a scope: ``a.b.0`` -> ``b.0``."""
    atoms = qualified.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified


class _ScopeResolver:
    """ONNX node -> chain of (module qualified name, call index), outermost first; None if unknown."""

    def __init__(self, torch_model: Any) -> None:
        self.children: dict[str, dict[str, str]] = {}
        self.modules = dict(torch_model.named_modules())
        for qname, module in self.modules.items():
            self.children[qname] = {
                _unqualified(f"{qname}.{child}" if qname else child): f"{qname}.{child}" if qname else child
                for child, _ in module.named_children()
            }

    def __call__(self, node: Any) -> list[tuple[str, int]] | None:
        # NodeProto.metadata_props is onnx >= 1.16 (IR 10); an older onnx cannot carry dynamo's
        # scope metadata, so only the torchscript node names are there to read.
        for prop in getattr(node, "metadata_props", ()):
            if prop.key == "pkg.torch.onnx.name_scopes":
                return self._dynamo(prop.value)
        if node.name.startswith("/"):
            return self._torchscript(node.name.split("/")[1:-1])
        return None

    def _split_call(self, name: str, known: Callable[[str], bool]) -> tuple[str, int] | None:
        if known(name):
            return name, 0
        match = _CALL_SUFFIX.match(name)
        if match and known(match.group(1)):
            return match.group(1), int(match.group(2))
        return None

    def _dynamo(self, text: str) -> list[tuple[str, int]] | None:
        try:
            scopes = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        if not isinstance(scopes, list) or not scopes:
            return None
        chain = [("", 0)]
        for scope in scopes[1:-1]:  # '' is the root, the last one is the FX node
            found = self._split_call(str(scope), self.modules.__contains__)
            if found is None:
                return None
            chain.append(found)
        return chain

    def _torchscript(self, segments: list[str]) -> list[tuple[str, int]] | None:
        chain = [("", 0)]
        current = ""
        for segment in segments:
            children = self.children.get(current, {})
            found = self._split_call(segment, children.__contains__)
            if found is None:
                return None
            current = children[found[0]]
            chain.append((current, found[1]))
        return chain


@dataclass(frozen=True)
class GraphScopes:
    """The ONNX graph seen through the torch module tree: which nodes each module call holds."""

    #: the graph's nodes in topological order; node indices below refer to this list
    nodes: list[Any]
    #: value name -> index of the node producing it
    position: dict[str, int]
    #: value name -> indices of the nodes reading it
    consumers: dict[str, list[int]]
    #: (module qualified name, call index) -> indices of the nodes inside that call, sorted
    members: dict[tuple[str, int], list[int]]
    #: how many nodes have no scope naming a torch module
    unscoped: int
    graph_outputs: list[str]
    initializers: set[str]

    def boundary(self, inside: list[int]) -> tuple[list[str], list[str]]:
        """The values entering and leaving a group of nodes (initializers are not inputs)."""
        inside_set = set(inside)
        produced = [v for i in inside for v in self.nodes[i].output if v]
        produced_set = set(produced)
        leaving = [v for v in produced
                   if v in self.graph_outputs or any(j not in inside_set for j in self.consumers.get(v, ()))]
        entering: list[str] = []
        for i in inside:
            for v in self.nodes[i].input:
                if v and v not in produced_set and v not in self.initializers and v not in entering:
                    entering.append(v)
        return entering, leaving


def _split_repeated_calls(members: dict[tuple[str, int], list[int]], calls: Mapping[str, list[Any]], nodes: list[Any]) -> None:
    """Share a module's nodes out among its calls when the scope names do not number them.

    The dynamo exporter gives every call of a module the same scope; the nodes of separate calls
    form separate connected pieces, assigned to the calls in topological order. When the pieces
    do not line up with the calls, all stay with the first call (and will not match: ambiguous).
    """
    for qname, per_call in calls.items():
        if len(per_call) < 2 or (qname, 0) not in members or any((qname, k) in members for k in range(1, len(per_call))):
            continue
        pieces = _connected_pieces(members[(qname, 0)], nodes)
        if len(pieces) != len(per_call):
            continue
        for k, piece in enumerate(sorted(pieces, key=min)):
            members[(qname, k)] = sorted(piece)


def _connected_pieces(inside: list[int], nodes: list[Any]) -> list[list[int]]:
    """The nodes ``inside`` grouped into pieces connected by the values they pass each other."""
    parent = {i: i for i in inside}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    producer = {v: i for i in inside for v in nodes[i].output if v}
    for i in inside:
        for v in nodes[i].input:
            if v in producer:
                parent[root(i)] = root(producer[v])
    pieces: dict[int, list[int]] = {}
    for i in inside:
        pieces.setdefault(root(i), []).append(i)
    return list(pieces.values())


def scope_graph(graph: Any, torch_model: Any, calls: Mapping[str, list[Any]]) -> GraphScopes:
    """Read each node's torch module scope and group the nodes by module call (``calls``: how
    often each module ran, from :func:`run_torch_hooked`)."""
    nodes = topological_nodes(graph)
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for v in node.input:
            consumers.setdefault(v, []).append(i)
    resolve = _ScopeResolver(torch_model)
    members: dict[tuple[str, int], list[int]] = {}
    unscoped = 0
    for i, node in enumerate(nodes):
        chain = resolve(node)
        if chain is None:
            unscoped += 1
            continue
        for scope in chain[1:]:
            members.setdefault(scope, []).append(i)
    _split_repeated_calls(members, calls, nodes)
    return GraphScopes(
        nodes=nodes,
        position={v: i for i, node in enumerate(nodes) for v in node.output if v},
        consumers=consumers,
        members=members,
        unscoped=unscoped,
        graph_outputs=[o.name for o in graph.output],
        initializers={i.name for i in graph.initializer},
    )
