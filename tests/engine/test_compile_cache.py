"""The compiled decode step's on-disk cache: a second engine start with the same
cache folder loads the package the first one built instead of compiling, and a
package that cannot be used is discarded, never run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm import envs
from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.models.compile_cache import CacheKey, PackageCache
from agentic_llm.engine.models.compiled_decode import (
    CompiledDecode,
    compiler_available,
    load_tolerance,
)

from .conftest import random_prompts

needs_compiler = pytest.mark.skipif(not compiler_available(torch.device("cpu"))[0],
                                    reason="inductor finds no C++ compiler")


def make(d: Path, cache: Path) -> LLMEngine:
    return LLMEngine.from_pretrained(d, num_blocks=64, block_size=4, compile_decode=True,
                                     compile_cache_dir=str(cache))


def decode(eng: LLMEngine) -> list[list[int]]:
    outs = eng.generate(random_prompts(3, [5, 9, 3], seed=4), SamplingParams(max_tokens=6, ignore_eos=True))
    return [o.output_token_ids for o in outs]


def forbid_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("compiling is not allowed here")

    monkeypatch.setattr(CompiledDecode, "_export_and_package", refuse)


@needs_compiler
def test_second_start_loads_the_package(checkpoint_factory: Callable[..., Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = checkpoint_factory("llama")
    first = make(d, tmp_path)
    want = decode(first)
    s1 = first.stats()
    comp1 = first.model.decode_runner.compiled
    assert comp1 is not None and s1["compiled_decode_off_reason"] == ""
    assert s1["decode_compile_cache_hit"] is False and s1["compiled_decode_steps"] > 0
    assert comp1.cache_path is not None and comp1.cache_path.is_file()
    assert comp1.cache_path.parent.parent == tmp_path
    assert (comp1.cache_path.parent / "key.json").is_file()
    first.close()

    # the second start may not compile: only the load path can make its step compiled
    forbid_compiling(monkeypatch)
    second = make(d, tmp_path)
    assert decode(second) == want
    s2 = second.stats()
    assert s2["compiled_decode_off_reason"] == ""
    assert s2["decode_compile_cache_hit"] is True
    assert s2["compiled_decode_steps"] > 0
    comp2 = second.model.decode_runner.compiled
    assert comp2 is not None and comp2.cache_path == comp1.cache_path
    assert s2["decode_compile_s"] < s1["decode_compile_s"]
    second.close()

    # a damaged package is discarded, not run: with compiling refused the step stays eager
    broken = tmp_path / "broken"
    shutil.copytree(comp1.cache_path.parent, broken / comp1.cache_path.parent.name)
    (broken / comp1.cache_path.parent.name / "decode.pt2").write_bytes(b"not a package")
    third = make(d, broken)
    with pytest.warns(RuntimeWarning, match="compiling is not allowed"):
        assert decode(third) == want
    assert third.stats()["decode_compile_cache_hit"] is False
    assert not (broken / comp1.cache_path.parent.name).exists()
    third.close()


@needs_compiler
def test_second_start_loads_the_package_of_bf16_weights(checkpoint_factory: Callable[..., Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Projection weights in bf16 (``weight_dtype``): the package differs from the eager
    step by bf16 rounding, which the load check accepts, so a second start loads it."""
    d = checkpoint_factory("llama")

    def start() -> LLMEngine:
        return LLMEngine.from_pretrained(d, num_blocks=64, block_size=4, compile_decode=True,
                                         compile_cache_dir=str(tmp_path), weight_dtype=torch.bfloat16)

    first = start()
    want = decode(first)
    assert first.stats()["compiled_decode_steps"] > 0 and first.stats()["decode_compile_cache_hit"] is False
    first.close()
    forbid_compiling(monkeypatch)
    second = start()
    assert decode(second) == want
    s2 = second.stats()
    assert s2["decode_compile_cache_hit"] is True and s2["compiled_decode_steps"] > 0
    second.close()


def test_load_tolerance_follows_the_narrowest_operand() -> None:
    # SmolLM2's package over bf16 weights differed from the eager step by more than
    # float32 rounding, so a float32 tolerance discarded it at every start
    h, w = torch.zeros(2, 4), torch.zeros(4, 4)
    assert load_tolerance((h, [w, None, torch.zeros(3, dtype=torch.long)])) == 1e-3
    assert load_tolerance((h, [w, w.to(torch.bfloat16)])) == 5e-2
    assert load_tolerance((h.to(torch.bfloat16), [w])) == 5e-2


def test_key_covers_model_torch_and_parts(tmp_path: Path) -> None:
    base = CacheKey.build("abcd", {"config": "c1", "weights": [(4, 4)]})
    assert base == CacheKey.build("abcd", {"weights": [(4, 4)], "config": "c1"})  # order does not matter
    assert base.torch == torch.__version__ and torch.__version__.split("+")[0] in base.name
    assert base.name.startswith("abcd-")
    assert CacheKey.build("abcd", {"config": "c2", "weights": [(4, 4)]}).digest != base.digest
    assert CacheKey.build("ef01", {"config": "c1", "weights": [(4, 4)]}).name != base.name
    cache = PackageCache(tmp_path / "c")
    assert cache.lookup(base) is None
    pkg = tmp_path / "p.pt2"
    pkg.write_bytes(b"x" * 10)
    stored = cache.store(base, pkg)
    assert stored == cache.lookup(base) and stored is not None and stored.read_bytes() == b"x" * 10
    assert {p.name for p in stored.parent.iterdir()} == {"decode.pt2", "key.json"}  # no temporary left
    cache.discard(base)
    assert cache.lookup(base) is None


def test_cache_folder_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTIC_COMPILE_CACHE_DIR", str(tmp_path / "x"))
    assert envs.compile_cache_dir() == tmp_path / "x"
    monkeypatch.setenv("AGENTIC_COMPILE_CACHE_DIR", "off")
    assert envs.compile_cache_dir() is None
    monkeypatch.delenv("AGENTIC_COMPILE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert envs.compile_cache_dir() == tmp_path / "xdg" / "agentic-llm" / "compile"
