"""A profile section's store settings as a StoreConfig (cache and library share it)."""

from __future__ import annotations

from pathlib import Path

from agentic_llm.cache.stores import store_config


def test_lmdb_settings_create_the_directory(tmp_path: Path) -> None:
    where = tmp_path / "sub" / "cache.lmdb"
    cfg = store_config("lmdb", str(where), "", {"map_size_mb": 8}, namespace="agentic:lib:")
    assert where.is_dir()
    assert (cfg.kind, cfg.path, cfg.url, cfg.namespace) == ("lmdb", where, None, "agentic:lib:")
    assert dict(cfg.options) == {"map_size_mb": 8}


def test_other_stores_keep_the_path_without_creating_it(tmp_path: Path) -> None:
    cfg = store_config("memory", str(tmp_path / "unused"), "redis://h:6379/0", None)
    assert not (tmp_path / "unused").exists()
    assert (cfg.path, cfg.url, cfg.namespace, dict(cfg.options)) == (
        tmp_path / "unused", "redis://h:6379/0", "agentic:sg:", {})
    assert store_config("memory", "", "", {}).path is None
