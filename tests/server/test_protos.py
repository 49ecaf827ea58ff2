"""Generated gRPC code: produced from protos/, package imports, stubs, staleness."""

from __future__ import annotations

from pathlib import Path

from agentic_llm.wire import protos


def test_generate_into_a_fresh_tree(tmp_path: Path) -> None:
    written = protos.generate(tmp_path)
    gen = tmp_path / "agentic_llm" / "_proto" / "agentic" / "v1"
    names = {p.name for p in written}
    assert {"agentic_pb2.py", "agentic_pb2.pyi", "agentic_pb2_grpc.py", "__init__.py",
            "agentic.proto", "SOURCE_SHA256"} <= names
    grpc_code = (gen / "agentic_pb2_grpc.py").read_text()
    # Imports are package-qualified as generated, without any rewriting.
    assert "from agentic_llm._proto.agentic.v1 import agentic_pb2" in grpc_code
    assert "class GenerateSubgraphRequest" in (gen / "agentic_pb2.pyi").read_text()


def test_loaded_modules_match_the_sources() -> None:
    mods = protos.load()
    assert mods.pb2.DESCRIPTOR.package == "agentic_llm.agentic.v1"
    assert mods.pb2.DESCRIPTOR.services_by_name["AgenticLLM"].full_name == protos.SERVICE_NAME
    assert hasattr(mods.pb2_grpc, "AgenticLLMStub")
    src = protos.source_dir()
    assert src is not None
    root = Path(protos.__file__).resolve().parents[2]
    assert not protos._is_stale(root)


def test_stale_code_is_detected(tmp_path: Path) -> None:
    protos.generate(tmp_path)
    assert not protos._is_stale(tmp_path)
    stamp = tmp_path / "agentic_llm" / "_proto" / "agentic" / "v1" / "SOURCE_SHA256"
    stamp.write_text("0" * 64 + "\n")
    assert protos._is_stale(tmp_path)
