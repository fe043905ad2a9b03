"""Cache keep-alive: which nodes a prompt carries, inert, so ComfyUI's cache keeps other work's entries.

ComfyUI's default (classic) cache drops, before every prompt, each entry whose node the prompt lacks; its
LRU and RAM-pressure caches keep entries by how recently a prompt named them. So an entry survives only
while the prompts keep naming its node, with the same inputs and ancestors (the cache key is the
node's class, fingerprint and inputs, expanded through every ancestor; node ids do not matter, except
for nodes that ask for their ``unique_id``). Carried nodes are inert: ComfyUI only executes what the
prompt's listed outputs need.

What is carried, and why only that:
- A stream's own prompt: the live output's ancestors only (other output nodes of the workflow never run
  per frame; unconnected nodes would only cost signature work every frame).
- Other streams' *frame-independent* nodes (ancestors of their live output not downstream of any live
  input): the model loaders and constant branches whose cached results save work. Frame-dependent nodes
  are recomputed every frame anyway, so carrying them (as the first design did) only made each stream's
  per-frame cost grow with every other stream's whole workflow (issue 13 §9).
- The last ComfyUI user prompt's nodes (recorded by the host's on-prompt handler), so a user's second
  identical Run still finds its entries after the stream's frames ran.
- In the other direction, the host adds every live stream's frame-independent nodes to each user prompt
  (``for_user_prompt``), so a click on Run does not evict a stream's loaded models.

Fingerprints are pinned: ComfyUI computes a node's fingerprint (``IS_CHANGED``) for every node of every
prompt unless the node object already holds one (``is_changed``, which ComfyUI writes into it). For
``LoadImage`` that is a SHA-256 of the image file: a user prompt loading a 2048x2048 PNG, carried in every
frame's prompt, halved a 256x256 stream's rate (122 -> 61 fps, compact upscaler). So a stream's carried
nodes are copies made once and reused by its prompts (``PromptBuilder.build`` does not copy them again):
ComfyUI fingerprints each copy on its first prompt, and later prompts reuse that. The copies are renewed
every ``PIN_REFRESH_S``, so a file changed on disk is seen within that time (until then the carried key
keeps the entry of the previous contents alive, which is what it is carried for).

Thread model: everything here runs on the event loop that serves ComfyUI (the pump, and ComfyUI's
on-prompt handlers inside ``POST /prompt``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# a stream's frame-independent nodes (namespaced), read when needed so a workflow update is seen at once
NodesSource = Callable[[], dict[str, Any]]

PIN_REFRESH_S = 1.0


class CacheKeepAlive:
    """The nodes to carry inert in each prompt: per live stream, and the last user prompt."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._streams: dict[str, NodesSource] = {}
        self._user_nodes: dict[str, Any] = {}
        # bumped whenever what is carried may have changed, so a frame's prompt checks one number
        # instead of every other stream's nodes (its cost stays the same however many streams run)
        self._version = 0
        # per stream: (the version the merge was built at, when, the merged copies); rebuilt when the
        # version moved or the copies are older than PIN_REFRESH_S (see the module docstring)
        self._merged: dict[str, tuple[int, float, dict[str, Any]]] = {}

    def add_stream(self, stream_id: str, source: NodesSource) -> None:
        """Carry this stream's frame-independent nodes in others' prompts from now on."""
        self._streams[stream_id] = source
        self.changed()

    def remove_stream(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)
        self._merged.pop(stream_id, None)
        self.changed()

    def changed(self) -> None:
        """A stream's frame-independent nodes may be others now (it switched to a new workflow)."""
        self._version += 1

    def remember_user_prompt(self, nodes: dict[str, Any]) -> None:
        """The nodes of the newest user prompt (already filtered by the host to nodes ComfyUI knows)."""
        self._user_nodes = nodes
        self.changed()

    def for_stream(self, stream_id: str) -> dict[str, Any]:
        """Inert nodes for one frame of ``stream_id``: other streams' frame-independent nodes and the last
        user prompt's nodes (the stream's own nodes, added by its builder, win on an id clash). The node
        objects are this stream's own copies, shared by its prompts until renewed (pinned fingerprints)."""
        now = self._clock()
        cached = self._merged.get(stream_id)
        if cached is not None and cached[0] == self._version and now - cached[1] < PIN_REFRESH_S:
            return cached[2]
        merged: dict[str, Any] = {}
        others = (source() for other, source in self._streams.items() if other != stream_id)
        for nodes in (self._user_nodes, *others):
            merged.update((node_id, dict(node)) for node_id, node in nodes.items())
        self._merged[stream_id] = (self._version, now, merged)
        return merged

    def for_user_prompt(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """Every live stream's frame-independent nodes whose ids the user's prompt does not use."""
        carried: dict[str, Any] = {}
        for source in self._streams.values():
            for node_id, node in source().items():
                if node_id not in prompt:
                    carried[node_id] = node
        return carried

    def stream_node_count(self) -> int:
        """How many frame-independent nodes the live streams have together (status, tests, bench)."""
        return sum(len(source()) for source in self._streams.values())
