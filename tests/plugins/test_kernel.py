"""The plugin kernel: contract, entry points, profiles, fallback, plugin list, health."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentic_llm import registry
from agentic_llm.config import ServerConfig, load_config
from agentic_llm.errors import AgenticError, ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def _plugin_list(site: Path, profile: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    out = subprocess.run([sys.executable, "-m", "agentic_llm.cli.main", "plugin", "list", "--json",
                          "--profile", str(profile)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120, check=True)
    return json.loads(out.stdout)


def test_entry_point_provider_is_listed_with_its_contract(plugin_site: Path) -> None:
    assert {"jsonfile", "flaky", "missing"} <= set(registry.names("cache_store"))
    info = registry.info("cache_store", "jsonfile")
    assert info.source == "entry_point"
    assert info.version == "1.2.0"
    assert set(info.config_schema) == {"file", "indent"}
    missing = registry.info("cache_store", "missing")
    assert not missing.loaded and "not installed" in missing.error


def test_profile_selects_the_plugin_store_and_the_cache_uses_it(plugin_site: Path, tmp_path: Path) -> None:
    from agentic_llm.planner import GenerateRequest, plan
    from agentic_llm.serving.subgraphs import open_subgraph_cache

    file = tmp_path / "cache.json"
    cfg = ServerConfig.from_dict({"cache": {"store": "jsonfile", "options": {"file": str(file)}}})
    cache = open_subgraph_cache(cfg.cache)
    assert cache is not None
    assert type(cache.cache.store).__name__ == "JsonFileStore"
    p = plan(GenerateRequest.from_json({"target_path": "/dynamic/a", "prompt": "say hi"}))
    text = ("### AgenticDSL `/dynamic/a`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
            "entry: \"start\"\nnodes:\n  - id: \"start\"\n    type: start\n    next: [\"/dynamic/a/end\"]\n"
            "  - id: \"end\"\n    type: end\n# --- END AgenticDSL ---\n```\n")
    cache.insert(p, text)
    assert cache.lookup(p) is not None
    assert json.loads(file.read_text()), "the plugin store received the entry"
    act = next(a for a in registry.activations() if a.role == "subgraph_cache")
    assert (act.requested, act.active, act.fell_back) == ("jsonfile", "jsonfile", False)


@pytest.mark.parametrize("options, needle", [
    ({}, "'file' is required"),
    ({"file": "x", "colour": 1}, "unknown option"),
    ({"file": "x", "indent": "two"}, "must be int"),
])
def test_plugin_options_are_validated_by_its_schema(plugin_site: Path, options: dict, needle: str) -> None:
    with pytest.raises(AgenticError) as err:
        ServerConfig.from_dict({"cache": {"store": "jsonfile", "options": options}})
    assert err.value.code is ErrorCode.INVALID_CONFIG
    assert needle in err.value.message


def test_unknown_store_is_refused_with_the_known_names(plugin_site: Path) -> None:
    with pytest.raises(AgenticError) as err:
        ServerConfig.from_dict({"cache": {"store": "nosuch"}})
    assert err.value.code is ErrorCode.INVALID_CONFIG and "jsonfile" in err.value.message


def test_a_store_that_raises_at_start_falls_back_to_the_default(plugin_site: Path, tmp_path: Path) -> None:
    from agentic_llm.serving.subgraphs import open_subgraph_cache

    cfg = ServerConfig.from_dict({"cache": {"store": "flaky", "path": str(tmp_path / "sg.lmdb")}})
    cache = open_subgraph_cache(cfg.cache)
    assert cache is not None
    assert type(cache.cache.store).__name__ == "LmdbStore"
    act = next(a for a in registry.activations() if a.role == "subgraph_cache")
    assert act.fell_back and act.active == "lmdb" and "unreachable" in act.reason
    health = registry.health_check()
    assert health.status == "degraded"
    assert "flaky" in health.detail and "lmdb" in health.detail
    cache.close()


def test_health_is_clean_when_the_selected_provider_serves(plugin_site: Path, tmp_path: Path) -> None:
    from agentic_llm.serving.subgraphs import open_subgraph_cache

    cfg = ServerConfig.from_dict({"cache": {"store": "jsonfile",
                                            "options": {"file": str(tmp_path / "c.json")}}})
    open_subgraph_cache(cfg.cache)
    health = registry.health_check()
    assert health.data["cache_store/subgraph_cache"] == "jsonfile"
    assert "cache_store/subgraph_cache" not in health.detail


def test_plugin_list_says_which_store_is_active_and_why(plugin_site: Path, tmp_path: Path) -> None:
    profile = tmp_path / "flaky.yaml"
    profile.write_text(yaml.safe_dump({"cache": {"store": "flaky", "path": str(tmp_path / "x.lmdb")}}))
    report = {k["kind"]: k for k in _plugin_list(plugin_site, profile)}
    assert {"attention_backend", "scheduling_policy", "cache_store", "aga.retriever",
            "model_backend", "grammar_target_runtime"} <= set(report)
    cs = report["cache_store"]
    assert (cs["requested"], cs["active"], cs["fell_back"]) == ("flaky", "lmdb", True)
    provs = {p["name"]: p for p in cs["providers"]}
    assert provs["flaky"]["status"].startswith("failed:") and "unreachable" in provs["flaky"]["status"]
    assert provs["flaky"]["version"] == "0.9.0" and provs["flaky"]["source"] == "entry_point"
    assert provs["lmdb"]["status"].startswith("active: fallback")
    assert provs["missing"]["status"].startswith("unavailable:")
    assert report["scheduling_policy"]["active"] == "branch_aware"

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"cache": {"store": "jsonfile",
                                              "options": {"file": str(tmp_path / "g.json")}}}))
    cs = {k["kind"]: k for k in _plugin_list(plugin_site, good)}["cache_store"]
    assert (cs["active"], cs["fell_back"]) == ("jsonfile", False)
    assert "selected by cache.store" in cs["reason"]


def test_in_code_provider_contract_and_default_options() -> None:
    @registry.register("cache_store", "test-inline", version="3.1")
    class Inline:
        """An in-code provider."""

        config_schema = {"size": (int, 8), "name": (str, "x")}

    try:
        assert registry.validate_config("cache_store", "test-inline", {"size": 2}) == {"size": 2, "name": "x"}
        info = registry.info("cache_store", "test-inline")
        assert (info.version, info.source, info.description) == ("3.1", "code", "An in-code provider.")
    finally:
        registry.unregister("cache_store", "test-inline")


def test_activate_without_fallback_raises_the_providers_error(plugin_site: Path) -> None:
    with pytest.raises(AgenticError) as err:
        registry.activate("cache_store", "missing", fallback=False)
    assert err.value.code is ErrorCode.RESOURCE_UNAVAILABLE and "not installed" in err.value.message


def test_default_profile_lists_every_core_kind() -> None:
    from agentic_llm.cli.plugin import plugin_report

    report = {k["kind"]: k for k in plugin_report(load_config("default"), None)
              if k["kind"] != "cache_store"}
    for kind, spec in registry.KINDS.items():
        if kind == "cache_store":
            continue
        assert report[kind]["active"] == spec.default, kind
    backends = {p["name"]: p for p in report["model_backend"]["providers"]}
    assert set(backends) >= {"agentic", "sglang"}
    assert backends["sglang"]["target"].endswith(":SGLangExecutor")
