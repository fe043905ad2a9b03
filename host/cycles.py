"""Dependency cycles in a workflow, named node by node.

ComfyUI 0.3.75's ``validate_prompt`` refuses a workflow whose outputs depend on a cycle without naming a
node (``node_errors`` empty), so a user cannot tell what to fix. We find the cycles first, among the
nodes the outputs depend on (what ComfyUI would run), and name every node in each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..streams.errors import merge_node_errors, node_error


def upstream_graph(prompt: dict[str, Any], output_node_ids: Iterable[str]) -> dict[str, list[str]]:
    """Node id -> the node ids its linked inputs read from, for the nodes the outputs depend on."""
    graph: dict[str, list[str]] = {}
    pending = [node_id for node_id in output_node_ids if node_id in prompt]
    while pending:
        node_id = pending.pop()
        if node_id in graph:
            continue
        inputs = prompt[node_id].get("inputs") if isinstance(prompt[node_id], dict) else None
        sources: list[str] = []
        for value in (inputs or {}).values():
            # a link is [source node id, output slot]
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                source = str(value[0])
                if source not in sources:
                    sources.append(source)
        graph[node_id] = sources
        pending.extend(sources)
    return graph


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The cycles of ``graph`` as its strongly connected components with a cycle (more than one node,
    or a node linked to itself), each sorted; Tarjan's algorithm without recursion (no depth limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, sources = work[-1]
            descended = False
            for source in sources:
                if source not in index:
                    index[source] = low[source] = len(index)
                    stack.append(source)
                    on_stack.add(source)
                    work.append((source, iter(graph[source])))
                    descended = True
                    break
                if source in on_stack:
                    low[node] = min(low[node], index[source])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def cycle_node_errors(prompt: dict[str, Any], output_node_ids: list[str]) -> dict[str, Any]:
    """``node_errors`` naming every node in a dependency cycle the outputs depend on (empty: none)."""
    entries = []
    for cycle in cycles(upstream_graph(prompt, output_node_ids)):
        members = ", ".join(f"#{node_id}" for node_id in cycle)
        for node_id in cycle:
            entries.append(
                node_error(
                    node_id,
                    prompt[node_id].get("class_type"),
                    "dependency_cycle",
                    "Dependency cycle",
                    f"Node '#{node_id}' is part of a dependency cycle: {members}",
                    dependent_outputs=output_node_ids,
                )
            )
    return merge_node_errors(*entries)
