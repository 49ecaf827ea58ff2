"""Server config: profiles, validation, overrides, the serve command's flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agentic_llm.config import ServerConfig, load_config, profile_names
from agentic_llm.errors import AgenticError, ErrorCode


def test_shipped_profiles_load() -> None:
    assert {"default", "dev", "redis"} <= set(profile_names())
    default = load_config()
    assert default.cache.store == "lmdb" and default.model.dir == ""
    assert load_config("dev").cache.store == "memory"
    assert load_config("redis").cache.redis_url.startswith("redis://")


def test_config_is_frozen_and_round_trips() -> None:
    cfg = load_config("dev")
    with pytest.raises(AttributeError):
        cfg.listen = "x"  # type: ignore[misc]
    assert ServerConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("data,key", [
    ({"listen": "nope"}, "listen"),
    ({"limits": {"max_concurrent": 0}}, "limits.max_concurrent"),
    ({"limits": {"max_queue": "many"}}, "limits.max_queue"),
    ({"cache": {"store": "redis"}}, "cache.redis_url"),
    ({"cache": {"store": "disk"}}, "cache.store"),
    ({"tls": {"cert_file": "a.pem"}}, "tls"),
    ({"model": {"block_size": 12}}, "model.block_size"),
    ({"model": {"weight_dtype": "int4"}}, "model.weight_dtype"),
    ({"model": {"scheduling_options": {"coalesce_step": 2}}}, "model.scheduling_options"),
    ({"model": {"scheduling_options": {"coalesce_steps": -1}}}, "model.scheduling_options"),
    ({"model": {"scheduling_options": [2]}}, "model.scheduling_options"),
    ({"limitz": {}}, "config"),
    ({"limits": {"max_conc": 1}}, "limits"),
    ({"aga": {"retriever": "kv_store"}}, "aga.retriever"),
    ({"aga": {"knowledge_base_slots": 0}}, "aga.knowledge_base_slots"),
])
def test_bad_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(AgenticError) as info:
        ServerConfig.from_dict(data)
    assert info.value.code == ErrorCode.INVALID_CONFIG
    assert info.value.message.startswith(key)


def test_yaml_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("listen: '0.0.0.0:6000'\nlimits:\n  max_queue: 3\n")
    cfg = load_config(path, {"limits.max_concurrent": 2})
    assert cfg.listen == "0.0.0.0:6000" and cfg.limits.max_queue == 3
    assert cfg.limits.max_concurrent == 2
    with pytest.raises(AgenticError):
        load_config("no-such-profile")
    (tmp_path / "bad.yaml").write_text("listen: [\n")
    with pytest.raises(AgenticError):
        load_config(tmp_path / "bad.yaml")


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ServerConfig.from_dict({"auth": {"token_env": "AGENTIC_TEST_TOKEN"}})
    monkeypatch.setenv("AGENTIC_TEST_TOKEN", "abc")
    assert cfg.auth.resolve_token() == "abc"
    monkeypatch.delenv("AGENTIC_TEST_TOKEN")
    with pytest.raises(AgenticError):
        cfg.auth.resolve_token()


def test_serve_flags_become_overrides() -> None:
    from agentic_llm.cli.main import build_parser
    from agentic_llm.cli.serve import config_from_args

    args = build_parser().parse_args(["serve", "--profile", "dev", "--listen", "127.0.0.1:7000",
                                      "--cache", "memory", "--set", "limits.max_queue=5"])
    assert isinstance(args, argparse.Namespace)
    cfg = config_from_args(args)
    assert cfg.listen == "127.0.0.1:7000" and cfg.limits.max_queue == 5


def test_model_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agentic_llm.serving import resolve_model_dir

    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv("AGENTIC_MODEL_DIR", str(tmp_path))
    assert resolve_model_dir("") == tmp_path
    with pytest.raises(AgenticError) as info:
        resolve_model_dir(str(tmp_path / "missing"))
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    monkeypatch.delenv("AGENTIC_MODEL_DIR")
    from agentic_llm.models import default_model_dir

    assert resolve_model_dir("") == default_model_dir()  # SmolLM2's GGUF or agentic-tiny


def test_default_profile_cache_store_opens(tmp_path: Path) -> None:
    from agentic_llm.serving import open_subgraph_cache

    cfg = load_config("default", {"cache.path": str(tmp_path / "sg.lmdb")})
    cache = open_subgraph_cache(cfg.cache)
    assert cache is not None
    try:
        assert cache.stats()["entries"] == 0
        assert cache.invalidate(path_prefix="/dynamic") == 0
    finally:
        cache.close()
    assert open_subgraph_cache(load_config("default", {"cache.store": "none"}).cache) is None


def test_compile_decode_reaches_the_engine() -> None:
    """``model.compile_decode`` (off by default: it costs tens of seconds at the first
    decode) is the engine's option; building the engine does not compile yet."""
    from agentic_llm.models import default_model_dir
    from agentic_llm.serving.build import build_engine

    assert load_config().model.compile_decode is False
    cfg = load_config(overrides={"model.compile_decode": True, "model.num_blocks": 64})
    engine = build_engine(cfg, default_model_dir())
    try:
        assert engine.config.compile_decode is True
        assert engine.stats()["compiled_decode_steps"] == 0
    finally:
        engine.close()


def test_weight_dtype_reaches_the_model() -> None:
    """``model.weight_dtype`` narrows the projections of the engine serve builds, and
    the subgraph cache's version names the precision (other greedy outputs)."""
    import torch

    from agentic_llm.models import shipped_model_dir
    from agentic_llm.serving.build import _precision, build_engine

    assert load_config().model.weight_dtype == "" and _precision(load_config()) == "float32"
    cfg = load_config(overrides={"model.weight_dtype": "bfloat16", "model.num_blocks": 64})
    assert _precision(cfg) == "float32-wbfloat16"
    assert _precision(load_config(overrides={"model.weight_dtype": "float32"})) == "float32"
    engine = build_engine(cfg, shipped_model_dir())
    try:
        assert engine.model.lm_head.weight.dtype == torch.bfloat16
        assert engine.model.model.embed_tokens.weight.dtype == torch.float32
    finally:
        engine.close()
