"""Find nodes of a subgraph while its text is still being generated.

The generation profile (docs/canonical-form.md) writes one subgraph block whose
``nodes:`` list items start with ``  - id: "..."`` at two spaces of indentation. A
node is complete when the next item starts or the block's END marker arrives, so a
runtime can schedule the first nodes while the rest is still being written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import yaml

from agentic_llm.serving.ast import node_info
from agentic_llm.serving.result import AstNodeInfo, NodeEvent

__all__ = ["NodeStream"]

_HEADING = re.compile(r"^#+\s*AgenticDSL\s+[`'](?P<path>/[^`']*)[`']\s*$")
_ITEM = "  - "
_END = "# --- END AgenticDSL ---"


def _parse_node(path: str, chunk: str) -> AstNodeInfo | None:
    """Parse one node item (its lines as written) into a record, or None."""
    doc_text = (
        f"### AgenticDSL `{path}`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        f"graph_type: subgraph\nnodes:\n{chunk}\n{_END}\n```\n"
    )
    try:
        from agentic_llm.dsl import parse

        doc = parse(doc_text)
        block = doc.blocks[0]
        node = block.nodes[0]  # type: ignore[union-attr]
        return node_info(node, f"{path}/{node.id}")
    except Exception:  # noqa: BLE001 - fall back to plain YAML for a partial document
        pass
    try:
        items = yaml.safe_load(chunk)
    except yaml.YAMLError:
        return None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return None
    raw: dict[str, Any] = dict(items[0])
    node_id = str(raw.pop("id", ""))
    nxt = raw.pop("next", []) or []
    if isinstance(nxt, str):
        nxt = [nxt]
    return AstNodeInfo(
        id=node_id,
        type=str(raw.pop("type", "")),
        path=f"{path}/{node_id}",
        next=tuple(str(t) for t in nxt),
        fields=raw,
    )


class NodeStream:
    """Feed generated text in pieces; get a :class:`NodeEvent` per completed node.

    Args:
        target_path: the path the subgraph is generated at (used until the heading
            line has been seen).
        on_node: called with each event, in order.
        started: ``time.perf_counter()`` of the request's arrival, for ``elapsed_ms``.
    """

    def __init__(
        self, target_path: str, on_node: Callable[[NodeEvent], None], started: float | None = None
    ) -> None:
        self.path = target_path
        self._on_node = on_node
        self._started = time.perf_counter() if started is None else started
        self._pending = ""
        self._current: list[str] | None = None
        self._done = False
        self.count = 0

    def feed(self, text: str) -> None:
        """Add generated text; completed lines are examined at once."""
        if self._done or not text:
            return
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        """The text is complete: finish the open node, if any."""
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        self._finish()
        self._done = True

    def _line(self, line: str) -> None:
        if self._done:
            return
        m = _HEADING.match(line)
        if m:
            self._finish()
            self.path = m.group("path")
            return
        if line.startswith(_ITEM):
            self._finish()
            self._current = [line]
        elif line.strip() == _END or line.startswith("```"):
            self._finish()
        elif self._current is not None:
            if line.startswith("    ") or not line.strip():
                self._current.append(line)
            else:  # a top-level key after the nodes list: the list is over
                self._finish()

    def _finish(self) -> None:
        if self._current is None:
            return
        chunk = "\n".join(self._current).rstrip()
        self._current = None
        info = _parse_node(self.path, chunk)
        if info is None:
            return
        event = NodeEvent(
            index=self.count,
            node=info,
            text=chunk + "\n",
            elapsed_ms=(time.perf_counter() - self._started) * 1000.0,
        )
        self.count += 1
        self._on_node(event)
