"""docs/observability.md documents every metric and every event kind."""

from __future__ import annotations

from pathlib import Path

from agentic_llm.observability.catalogue import CATALOGUE
from agentic_llm.observability.kinds import EVENT_SPECS

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def test_docs_list_every_metric_and_event() -> None:
    text = DOC.read_text(encoding="utf-8")
    for spec in CATALOGUE:
        assert f"`{spec.name}`" in text, f"{spec.name} is not documented"
    for kind, spec in EVENT_SPECS.items():
        assert f"`{kind}`" in text, f"event kind {kind} is not documented"
        for field in spec.fields:
            assert field in text, f"field {field} of {kind} is not documented"
