"""Generated gRPC code for the AgenticLLM service, built from ``protos/`` on demand.

The ``_pb2``, ``_pb2_grpc`` and ``.pyi`` modules are never committed. They are
generated into ``agentic_llm/_proto/`` when the package is built or installed (see
``setup.py``) and, for a source checkout, on first import when they are missing or
older than the ``.proto`` sources (a hash of the sources is stored beside them).

The ``.proto`` files live under ``protos/agentic_llm/agentic/v1/``. They are staged
into ``<tmp>/agentic_llm/_proto/agentic/v1/`` before ``protoc`` runs, with the
include path set to ``<tmp>``, so the generated modules import each other as
``agentic_llm._proto.agentic.v1.*`` without any rewriting of generated text.

This module imports nothing from ``agentic_llm`` at module level so that the build
hook can load it by file path before the package is importable.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

__all__ = ["ProtoModules", "load", "generate", "PROTO_PACKAGE", "SERVICE_NAME", "source_dir"]

#: Python package the generated modules live in.
PROTO_PACKAGE = "agentic_llm._proto.agentic.v1"
#: Fully qualified gRPC service name.
SERVICE_NAME = "agentic_llm.agentic.v1.AgenticLLM"

_REL = Path("agentic_llm") / "agentic" / "v1"          # under protos/
_GEN_REL = Path("agentic_llm") / "_proto" / "agentic" / "v1"  # under the output root
_STAMP = "SOURCE_SHA256"
_lock = threading.Lock()


class ProtoModules(NamedTuple):
    """The generated message module and the generated gRPC stub module."""

    pb2: ModuleType
    pb2_grpc: ModuleType


def source_dir() -> Path | None:
    """``protos/agentic_llm/agentic/v1`` of a source checkout, or None when absent."""
    here = Path(__file__).resolve()
    for root in (here.parents[2], Path.cwd()):
        cand = root / "protos" / _REL
        if cand.is_dir() and any(cand.glob("*.proto")):
            return cand
    # A wheel ships the sources beside the generated code.
    packaged = here.parents[1] / "_proto" / "agentic" / "v1"
    if packaged.is_dir() and any(packaged.glob("*.proto")):
        return packaged
    return None


def _sources_hash(src: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(src.glob("*.proto")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def generate(out_root: Path, src: Path | None = None) -> list[Path]:
    """Run ``protoc`` on the service's ``.proto`` files, writing under ``out_root``.

    ``out_root`` is the directory that contains the ``agentic_llm`` package (the
    repository root, or a wheel's build directory). Files are written to a temporary
    directory first and moved into place one by one with ``os.replace``, so two
    processes generating at once never leave a half-written module.

    Returns:
        the paths written.

    Raises:
        RuntimeError: no ``.proto`` sources, ``grpcio-tools`` missing, or ``protoc``
            failed (its message is included).
    """
    src = src or source_dir()
    if src is None:
        raise RuntimeError("the AgenticLLM .proto sources were not found (protos/ is missing)")
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - grpcio-tools is a declared dependency
        raise RuntimeError(
            "generating the gRPC code needs grpcio-tools: pip install 'agentic-llm[grpc]'"
        ) from exc
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(src.glob("*.proto"))
    with tempfile.TemporaryDirectory(prefix="agentic-protoc-") as tmp:
        stage = Path(tmp) / "in"
        gen = Path(tmp) / "out"
        (stage / _GEN_REL).mkdir(parents=True)
        gen.mkdir()
        for p in protos:
            shutil.copyfile(p, stage / _GEN_REL / p.name)
        args = [
            "grpc_tools.protoc",
            f"-I{stage}",
            f"-I{wkt}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            # protoc names each file by its path relative to the include dir it is
            # under, which is what makes the generated imports package-qualified.
            *[str(stage / _GEN_REL / p.name) for p in protos],
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc} on {[p.name for p in protos]}")
        for p in protos:  # ship the sources with the generated code
            shutil.copyfile(p, gen / _GEN_REL / p.name)
        (gen / _GEN_REL / _STAMP).write_text(_sources_hash(src) + "\n")
        written: list[Path] = []
        pkg = Path("agentic_llm") / "_proto"
        for rel_dir in (pkg, pkg / "agentic", pkg / "agentic" / "v1"):
            init = gen / rel_dir / "__init__.py"
            init.parent.mkdir(parents=True, exist_ok=True)
            if not init.exists():
                init.write_text('"""Generated gRPC code (not committed; see agentic_llm.client.protos)."""\n')
        for f in sorted(gen.rglob("*")):
            if f.is_dir():
                continue
            rel = f.relative_to(gen)
            dest = out_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp_dest = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(f, tmp_dest)
            os.replace(tmp_dest, dest)
            written.append(dest)
    return written


def _is_stale(out_root: Path) -> bool:
    gen_dir = out_root / _GEN_REL
    if not (gen_dir / "agentic_pb2.py").exists() or not (gen_dir / "agentic_pb2_grpc.py").exists():
        return True
    src = source_dir()
    if src is None or src.resolve() == gen_dir.resolve():
        return False
    stamp = gen_dir / _STAMP
    return not stamp.exists() or stamp.read_text().strip() != _sources_hash(src)


def _import() -> ProtoModules:
    pb2 = importlib.import_module(f"{PROTO_PACKAGE}.agentic_pb2")
    pb2_grpc = importlib.import_module(f"{PROTO_PACKAGE}.agentic_pb2_grpc")
    return ProtoModules(pb2, pb2_grpc)


_loaded: ProtoModules | None = None


def load() -> ProtoModules:
    """Import the generated modules, generating them first when missing or stale.

    Raises:
        RuntimeError: the code is missing and cannot be generated here.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        out_root = Path(__file__).resolve().parents[2]
        if _is_stale(out_root):
            generate(out_root)
            importlib.invalidate_caches()
        try:
            _loaded = _import()
        except Exception:  # noqa: BLE001 - e.g. a protobuf gencode/runtime version mismatch
            # Code generated by another protoc than the one installed: regenerate once.
            for name in [m for m in sys.modules if m.startswith("agentic_llm._proto")]:
                del sys.modules[name]
            generate(out_root)
            importlib.invalidate_caches()
            _loaded = _import()
        return _loaded
