"""A third-party provider package, installed into a temporary site directory.

The directory holds the package ``acme_agentic_store`` and its ``.dist-info`` with an
``entry_points.txt`` in the ``agentic_llm.plugins`` group, which is exactly what
``pip install`` leaves behind; ``importlib.metadata`` finds it once the directory is
on ``sys.path``. Nothing is installed into the shared environment.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = textwrap.dedent('''
    """A cache store in a file of JSON lines, and one that cannot start."""
    from __future__ import annotations

    import json
    import threading
    from pathlib import Path

    from agentic_llm.cache.stores.base import CacheStore
    from agentic_llm.registry import REQUIRED


    class JsonFileStore(CacheStore):
        """Records in memory, written through to a JSON file."""

        provider_version = "1.2.0"
        config_schema = {"file": (str, REQUIRED), "indent": (int, 0)}
        shared = False

        def __init__(self, file: str, indent: int = 0) -> None:
            self.file = Path(file)
            self.indent = indent
            self._data: dict[str, str] = {}
            self._lock = threading.Lock()
            if self.file.exists():
                self._data = json.loads(self.file.read_text())

        @classmethod
        def from_config(cls, config):
            return cls(**config.options)

        def _flush(self) -> None:
            self.file.write_text(json.dumps(self._data, indent=self.indent or None))

        def get(self, key):
            v = self._data.get(key)
            return None if v is None else v.encode("latin-1")

        def put(self, key, value, *, expires_at=None):
            with self._lock:
                self._data[key] = bytes(value).decode("latin-1")
                self._flush()

        def delete(self, keys):
            with self._lock:
                n = sum(1 for k in keys if self._data.pop(k, None) is not None)
                self._flush()
                return n

        def keys(self, prefix=""):
            return [k for k in self._data if k.startswith(prefix)]

        def close(self):
            pass

        def health(self):
            return self.file.parent.is_dir()


    class FlakyStore(JsonFileStore):
        """Raises when it starts (its backend is unreachable)."""

        provider_version = "0.9.0"
        config_schema = {}

        @classmethod
        def from_config(cls, config):
            raise RuntimeError("backend at flaky://store is unreachable")
''')

ENTRY_POINTS = textwrap.dedent('''
    [agentic_llm.plugins]
    cache_store.jsonfile = acme_agentic_store:JsonFileStore
    cache_store.flaky = acme_agentic_store:FlakyStore
    cache_store.missing = acme_agentic_store_not_installed:Store
''')


@pytest.fixture
def plugin_site(tmp_path: Path) -> Iterator[Path]:
    """A site directory with the provider package, on ``sys.path`` for the test."""
    from agentic_llm import registry

    site = tmp_path / "site"
    (site / "acme_agentic_store").mkdir(parents=True)
    (site / "acme_agentic_store" / "__init__.py").write_text(PACKAGE)
    dist = site / "acme_agentic_store-1.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-agentic-store\nVersion: 1.2.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    registry.refresh_entry_points()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in ("jsonfile", "flaky", "missing"):
            registry.unregister("cache_store", name)
        sys.modules.pop("acme_agentic_store", None)
