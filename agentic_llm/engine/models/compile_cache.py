"""On-disk cache of the compiled decode step's AOTInductor package.

Exporting and compiling the decode step costs tens of seconds (minutes for a 135M
model on a small machine) at every engine start. The package it produces does not
depend on weight values (weights are inputs of the compiled function, not
constants); it depends on the architecture, the inputs' dtypes, the weights'
shapes, strides and dtypes, the step's code, torch's build and the CPU's vector
instruction set (inductor generates code for the one it finds). Every one of those
goes into the entry's key, with the model's fingerprint (``engine.fingerprint``)
first so an entry can be traced to its checkpoint; an entry is a folder
``<root>/<model>-torch<version>-<digest>/`` holding ``decode.pt2`` and a
``key.json`` that lists the key's parts.

Entries are written to a temporary name and renamed into place, so a reader never
sees half a package and two engines may fill the same entry at once. A package
that does not load, or that disagrees with the eager step on its first call (see
``CompiledDecode``), is discarded and compiled again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

__all__ = ["CacheKey", "PackageCache", "code_digest", "vector_isa"]

log = logging.getLogger(__name__)

PACKAGE_NAME = "decode.pt2"
_KEY_FILE = "key.json"
# the modules whose code the compiled function is traced from
_STEP_SOURCES = ("compiled_decode.py", "decoder_step.py")


class CacheKey(NamedTuple):
    """What a compiled package was built for.

    Attributes:
        model: the checkpoint's fingerprint ("" when unknown).
        torch: torch's version.
        digest: 16 hex digits over every other part (``parts``).
        parts: the parts hashed into ``digest``, written beside the package.
    """

    model: str
    torch: str
    digest: str
    parts: dict[str, str]

    @classmethod
    def build(cls, model: str, parts: dict[str, Any]) -> CacheKey:
        """The key of ``model`` (a fingerprint) with ``parts`` (values turned into text)."""
        text = {k: str(v) for k, v in sorted(parts.items())}
        text["torch_build"] = f"{torch.__version__} {torch.version.git_version}"
        text["machine"] = platform.machine()
        h = hashlib.sha256(json.dumps(text, sort_keys=True).encode()).hexdigest()[:16]
        return cls(model, torch.__version__, h, text)

    @property
    def name(self) -> str:
        """The entry's folder name."""
        version = re.sub(r"[^A-Za-z0-9.]+", "_", self.torch)
        return f"{self.model or 'model'}-torch{version}-{self.digest}"


def code_digest() -> str:
    """16 hex digits over the source of the modules the step is traced from."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _STEP_SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def vector_isa(device: torch.device) -> str:
    """The instruction set inductor generates code for on ``device``."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"sm_{major}{minor}"
    try:
        # inductor's own pick, the one its generated code is built for
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        return str(pick_vec_isa()) or "none"
    except Exception:  # a torch build without it: the machine name is the best we have
        return platform.processor() or "unknown"


class PackageCache:
    """Compiled decode packages under ``root``, one folder per :class:`CacheKey`.

    Args:
        root: the cache directory (created at the first store).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: CacheKey) -> Path:
        """Where the package of ``key`` lives (whether or not it exists)."""
        return self.root / key.name / PACKAGE_NAME

    def lookup(self, key: CacheKey) -> Path | None:
        """The stored package of ``key``, or None."""
        p = self.path(key)
        return p if p.is_file() else None

    def store(self, key: CacheKey, package: Path) -> Path | None:
        """Copy ``package`` into the entry of ``key``; its path, or None when the cache
        cannot be written (logged: the engine runs on from the package it built)."""
        dest = self.path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".decode-", suffix=".tmp", dir=dest.parent)
            os.close(fd)
            try:
                shutil.copyfile(package, tmp)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            meta = {"model": key.model, "torch": key.torch, "digest": key.digest, **key.parts}
            (dest.parent / _KEY_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n",
                                                 encoding="utf-8")
        except OSError as exc:
            log.warning("compiled decode: cannot write the compile cache at %s: %s", dest.parent, exc)
            return None
        return dest

    def discard(self, key: CacheKey) -> None:
        """Remove the entry of ``key`` (a package that failed to load or to agree)."""
        shutil.rmtree(self.path(key).parent, ignore_errors=True)
