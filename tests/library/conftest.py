"""A loopback server over a tiny random model whose library lives in a temporary LMDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.tiny_model import build_tiny_model

LIB_DOC = '''### AgenticDSL `/lib/x`
```yaml
# --- BEGIN AgenticDSL ---
graph_type: subgraph
signature: "(a: number) -> b: number"
entry: "copy"
nodes:
  - id: "copy"
    type: assign
    assign:
      "b": "{{{{ inputs.a }}}}"
    next: ["/lib/x/done"]
  - id: "done"
    type: end
    output_keys: ["b"]
# --- END AgenticDSL ---
```
'''


def lib_doc(variant: str = "") -> str:
    """A valid ``/lib/x`` document; ``variant`` changes its text (a new version)."""
    return LIB_DOC.replace("{{{{ inputs.a }}}}", "{{ inputs.a }}" + variant)


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("library") / "lib.lmdb"


@pytest.fixture(scope="module")
def lib_server(tmp_path_factory: pytest.TempPathFactory, library_dir: Path) -> Iterator[Any]:
    from agentic_llm.config import ServerConfig
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import build_pipeline

    model = build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
    cfg = ServerConfig.from_dict({
        "listen": "127.0.0.1:0",
        "model": {"dir": str(model), "num_blocks": 512},
        "cache": {"store": "memory"},
        "library": {"store": "lmdb", "path": str(library_dir), "promote_min_runs": 4,
                    "promote_margin": 0.2, "admins": ["ops"]},
    })
    pipeline = build_pipeline(cfg)
    server = AgenticServer(cfg, pipeline).start()
    yield server
    server.stop()
    pipeline.close()


@pytest.fixture
def lib_client(lib_server: Any) -> Iterator[Any]:
    from agentic_llm.client import Client

    with Client(lib_server.address, timeout=120) as c:
        yield c
