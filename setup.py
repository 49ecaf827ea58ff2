"""Build hook: generate the gRPC code from protos/ whenever the package is built.

Everything else about the package is declared in pyproject.toml. The generated
modules go to ``agentic_llm/_proto/`` (ignored by git): into the build directory for
a wheel, and into the source tree for an editable install. When grpcio-tools is not
available in the build environment the step is skipped; the package then generates
the code on first import (``agentic_llm.wire.protos.load``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _protos_module():  # type: ignore[no-untyped-def]
    # Loaded by path: the package itself may not be importable while it is being built.
    spec = importlib.util.spec_from_file_location(
        "_agentic_protos", ROOT / "agentic_llm" / "wire" / "protos.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BuildPyWithProtos(build_py):
    """``build_py`` that also runs protoc on ``protos/``."""

    def run(self) -> None:
        protos = _protos_module()
        targets = [ROOT] if getattr(self, "editable_mode", False) else [ROOT, Path(self.build_lib)]
        for out_root in targets:
            try:
                protos.generate(out_root, ROOT / "protos" / "agentic_llm" / "agentic" / "v1")
            except RuntimeError as exc:
                print(f"agentic-llm: gRPC code not generated at build time ({exc}); "
                      "it will be generated on first import", file=sys.stderr)
                break
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
