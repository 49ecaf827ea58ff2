"""bench engine: every system on the same weights (a GGUF file too), the optional vLLM
row, memory bandwidth and weight traffic per row, the compiled step's warm-up."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from agentic_llm.benchmarks import engine as bench
from agentic_llm.benchmarks.engine_baselines import agreement, hf_model_from_loaded
from agentic_llm.benchmarks.engine_systems import parse_steps
from agentic_llm.benchmarks.membw import weight_bytes
from agentic_llm.cli.bench import bench_parser
from agentic_llm.engine.loader import load_model
from agentic_llm.engine.models.compiled_decode import compiler_available
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.models import shipped_model_dir
from tests.engine.conftest import build_hf, save
from tests.engine.gguf_util import write_llama_gguf

# small, so each run takes a few seconds on the tiny model
QUICK = ["--batches", "1,2", "--new-tokens", "34", "--repeat", "1", "--no-constrained", "--bandwidth-mb", "16"]


def args(*extra: str) -> Any:
    return bench_parser("engine", bench).parse_args([*QUICK, *extra])


def by_system(result: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["system"], r["batch"]): r for r in result["throughput"]}


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("family", ["llama", "llama-linear-tied", "qwen2", "qwen3"])
def test_transformers_model_holds_the_loaders_weights(family: str, tmp_path: Path) -> None:
    original = build_hf(family, seed=4)
    loaded = load_model(save(original, tmp_path / family))
    rebuilt = hf_model_from_loaded(loaded)
    assert type(rebuilt) is type(original)
    ids = torch.tensor([[3, 17, 5, 99, 42, 8, 61]])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(ids).logits, original(ids).logits, rtol=1e-5, atol=1e-5)
    # the copies are transformers' own: changing them leaves the engine's weights alone
    with torch.no_grad():
        rebuilt.model.layers[0].self_attn.q_proj.weight.zero_()
    assert loaded.model.model.layers[0].self_attn.q_proj.weight.abs().sum() > 0


def test_gguf_file_against_transformers_on_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import LlamaForCausalLM

    shipped = shipped_model_dir()
    hf = LlamaForCausalLM.from_pretrained(shipped, dtype=torch.float32).eval()
    gguf = write_llama_gguf(hf, tmp_path / "tiny.gguf", "Q4_0", tokenizer=shipped / "tokenizer.json")
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails: a note, no row
    monkeypatch.delenv("VLLM_LOGGING_STREAM", raising=False)
    result = bench.run_benchmark(args("--model", str(gguf), "--steps", "eager"), show=False)
    assert result["model"].endswith("tiny.gguf")
    assert result["systems"] == ["transformers", "ours-eager"]
    rows = by_system(result)
    for b in (1, 2):
        assert rows[("ours-eager", b)]["agree32_vs_transformers"] >= 0.9
        # the pool is sized so every decode step runs over the workspace (the fast path)
        assert rows[("ours-eager", b)]["fast_steps"] == 33 and rows[("ours-eager", b)]["compiled_steps"] == 0
        assert rows[("transformers", b)]["agree32_vs_transformers"] == 1.0
    # transformers ran what our loader dequantized, not the float checkpoint
    loaded = load_model(gguf)
    q = hf_model_from_loaded(loaded).model.layers[1].mlp.down_proj.weight
    assert torch.equal(q, loaded.model.model.layers[1].mlp.down_proj.weight)
    assert not torch.allclose(q, hf.model.layers[1].mlp.down_proj.weight, atol=1e-4)
    # untied: the embedding table is not read whole by a decode step
    per_step = sum(p.numel() * 4 for n, p in hf.named_parameters() if "embed_tokens" not in n)
    assert result["weight_bytes"] == per_step == weight_bytes(loaded.model)
    bw = result["memory_bandwidth"]
    assert bw["copy_gb_s_best"] >= bw["copy_gb_s_median"] > 0 and bw["read_gb_s_best"] > 0
    r = rows[("ours-eager", 2)]
    assert r["weight_gb_s"] == pytest.approx(per_step / r["tpot_s"] / 1e9)
    assert r["weight_share_of_read_bw"] == pytest.approx(r["weight_gb_s"] / bw["read_gb_s_best"])
    assert "docs/benchmarks.md" in result["vllm_note"] and "vllm" not in result["systems"]
    bench.print_result(result)
    out = capsys.readouterr().out
    assert "vLLM row skipped" in out and "% read bw" in out and "weights GB/s" in out and "33|0" in out


def test_pool_holds_the_decode_workspace_of_the_largest_batch() -> None:
    from agentic_llm.benchmarks.engine_systems import pool_bytes
    from agentic_llm.engine.loader import load_config

    cfg = load_config(shipped_model_dir())  # 4 layers, 2 KV heads of 32: 2 KiB of K/V per token
    from agentic_llm.engine.attention.torch_sdpa import WORKSPACE_MAX_BYTES, workspace_limit

    assert pool_bytes(cfg, 1, 100) == 256 << 20  # never below the engine's default
    need = 2048 * 64 * 4000  # 64 rows of 4,000 tokens
    pool = pool_bytes(cfg, 64, 4000)
    assert workspace_limit(pool) >= need and workspace_limit(pool - (17 << 20)) < need  # enough, not more
    big = pool_bytes(cfg, 512, 8000)  # no workspace is larger than WORKSPACE_MAX_BYTES
    assert workspace_limit(big) == WORKSPACE_MAX_BYTES and big == pool_bytes(cfg, 1024, 8000)


class _FakeVllm:
    """A stand-in for vLLM's offline API: it loads the directory the bench wrote with
    transformers, so tokens agree only if that directory holds the same weights."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        fake = self

        class SamplingParams:
            def __init__(self, **kw: Any) -> None:
                self.kw = kw

        class LLM:
            def __init__(self, model: str, **kw: Any) -> None:
                from transformers import AutoModelForCausalLM

                fake.calls.append({"model": model, "files": sorted(p.name for p in Path(model).iterdir()), **kw})
                self.m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()

            def generate(self, inputs: list[dict[str, list[int]]], params: SamplingParams,
                         use_tqdm: bool = True) -> list[Any]:
                assert params.kw["temperature"] == 0.0 and params.kw["ignore_eos"] is True
                n = params.kw["max_tokens"]
                outs = []
                for x in inputs:
                    ids = torch.tensor([x["prompt_token_ids"]])
                    with torch.no_grad():
                        row = self.m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                              pad_token_id=0)[0, ids.shape[1]:]
                    outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=row.tolist())]))
                return outs

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams, __version__="fake")


def test_vllm_row_runs_a_checkpoint_written_from_the_same_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("VLLM_LOGGING_STREAM", raising=False)
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "eager",
                                      "--batches", "1"), show=False)
    assert result["systems"] == ["transformers", "ours-eager", "vllm"] and result["vllm_note"] == ""
    row = by_system(result)[("vllm", 1)]
    assert row["agree32_vs_transformers"] == 1.0 and row["tok_s"] > 0
    (call,) = fake.calls
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(call["files"])
    assert call["dtype"] == "float32" and call["skip_tokenizer_init"] is True and call["enforce_eager"] is True
    assert call["kv_cache_memory_bytes"] == 1 << 30
    su = result["startup"]["vllm"]
    assert su["available"] and su["threads_bind"] == "0"
    assert not Path(call["model"]).exists()  # the temporary checkpoint is removed


@pytest.mark.skipif(not compiler_available(torch.device("cpu"))[0], reason="inductor finds no C++ compiler")
def test_compiled_step_warm_up_first_and_second_start() -> None:
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "compiled",
                                      "--compile-cache", "fresh", "--vllm", "off", "--batches", "2"), show=False)
    su = result["startup"]["ours-compiled"]
    assert su["compiled"] and su["compiled_decode_steps"] > 0
    assert su["first_start_compile_cache_hit"] is False and su["compile_cache_hit"] is True
    assert su["compile_warmup_s"] < su["first_start_compile_warmup_s"]
    assert result["checks"]["compile_warmup_le_20s"] is True
    row = by_system(result)[("ours-compiled", 2)]
    assert row["agree32_vs_transformers"] >= 0.9 and row["compiled_steps"] == 33
    assert not Path(su["compile_cache_path"]).exists()  # the fresh folder is removed


def test_steps_option() -> None:
    assert parse_steps("eager,compiled", None) == ["eager", "compiled"]
    assert parse_steps("compiled", None) == ["compiled"]
    assert parse_steps("eager,compiled", "off") == ["eager"]
    with pytest.raises(AgenticError) as e:
        parse_steps("eager,fast", None)
    assert e.value.code is ErrorCode.INVALID_CONFIG and "fast" in e.value.message


def test_agreement_counts_the_first_32_tokens() -> None:
    a = [list(range(40)), list(range(40))]
    b = [list(range(32)) + [0] * 8, list(range(16)) + [-1] * 24]
    assert agreement(a, b) == pytest.approx((32 + 16) / 64)
    assert agreement([[1, 2]], [[1]]) == 0.5


def test_no_system_sees_a_prompt_twice_and_all_see_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call a system makes runs prompts it has not run before (a prefix cache may
    not skip a whole prefill), and every system's measured calls run the same prompts."""
    from agentic_llm.benchmarks.engine_baselines import HFRunner
    from agentic_llm.engine import LLMEngine

    calls: dict[str, list[list[tuple[int, ...]]]] = {"transformers": [], "ours": [], "vllm": []}
    padded, generate = HFRunner._padded, LLMEngine.generate

    def hf_padded(self: Any, prompts: list[list[int]]) -> Any:
        calls["transformers"].append([tuple(p) for p in prompts])
        return padded(self, prompts)

    def ours_generate(self: Any, prompts: Any, *a: Any, **kw: Any) -> Any:
        calls["ours"].append([tuple(p) for p in prompts])
        return generate(self, prompts, *a, **kw)

    fake = _FakeVllm()
    fake_generate = fake.module.LLM.generate

    def vllm_generate(self: Any, inputs: list[dict[str, list[int]]], *a: Any, **kw: Any) -> Any:
        calls["vllm"].append([tuple(x["prompt_token_ids"]) for x in inputs])
        return fake_generate(self, inputs, *a, **kw)

    monkeypatch.setattr(HFRunner, "_padded", hf_padded)
    monkeypatch.setattr(LLMEngine, "generate", ours_generate)
    monkeypatch.setattr(fake.module.LLM, "generate", vllm_generate)
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.delenv("VLLM_LOGGING_STREAM", raising=False)
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "eager",
                                      "--batches", "1,2", "--repeat", "2"), show=False)
    for name, seen in calls.items():
        flat = [p for call in seen for p in call]
        assert len(flat) == len(set(flat)), f"{name} ran a prompt twice"
    # the measured calls (the last 4: batch 1 and 2, two rounds each) ran the same prompts
    # everywhere; transformers and vLLM ran a TTFT call on other prompts before each
    assert calls["ours"][-4:] == calls["transformers"][-7::2] == calls["vllm"][-7::2]
    assert [len(c) for c in calls["ours"][-4:]] == [1, 1, 2, 2]
    pr = result["protocol"]
    assert pr["distinct_prompts"] == 2 + 2 * (2 * 1 + 2 * 2)
    assert pr["prefix_cache"] == {"transformers": "none", "ours-eager": "radix", "vllm": "?"}
    assert 0 < pr["shared_prefix_tokens_median"] < result["prompt_tokens_median"]
    assert result["startup"]["ours-eager"]["prefix_cache"] == "radix"
    rows = by_system(result)
    assert rows[("vllm", 2)]["agree32_vs_transformers"] == 1.0
    assert rows[("ours-eager", 2)]["agree32_vs_transformers"] >= 0.9


def test_prompt_schedule_and_too_few_prompts() -> None:
    from agentic_llm.benchmarks.engine_prompts import distinct, prompt_schedule, shared_prefix

    s = prompt_schedule([1, 8], 3)
    used = s.warm + [i for t, m in s.rounds.values() for i in t + m]
    assert sorted(used) == list(range(s.needed)) and s.needed == 2 + 3 * 2 * 9
    assert all(len(t) == len(m) == b for (b, _), (t, m) in s.rounds.items())
    p, items = distinct([[1, 2], [1, 2], [1, 3]], ["a", "b", "c"], 2)
    assert p == [[1, 2], [1, 3]] and items == ["a", "c"]
    with pytest.raises(AgenticError) as e:
        distinct([[1], [1]], [0, 1], 2)
    assert e.value.code is ErrorCode.INVALID_CONFIG and "--repeat" in e.value.message
    assert shared_prefix([1, 2, 3, 4], [[1, 2, 9], [1, 2, 3], [5]]) == 3 and shared_prefix([1], []) == 0


def test_bfloat16_rows_are_compared_with_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.delenv("VLLM_LOGGING_STREAM", raising=False)
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "eager",
                                      "--dtype", "bfloat16"), show=False)
    assert result["weight_dtype"] == "bfloat16" and fake.calls[0]["dtype"] == "bfloat16"
    # every weight is stored in two bytes: half the float32 traffic
    assert result["weight_bytes"] == weight_bytes(load_model(shipped_model_dir(), dtype=torch.float32).model) // 2
    rows = by_system(result)
    for b in (1, 2):
        for name in ("transformers", "ours-eager", "vllm"):
            assert 0.5 <= rows[(name, b)]["agree32_vs_fp32"] <= 1.0
        assert rows[("ours-eager", b)]["fast_steps"] == 33  # the bf16 step runs the fast path too


def test_narrow_weight_rows_beside_full_precision() -> None:
    """--weight-dtype adds each step over bf16 projection weights, on the same prompts,
    compared with its full-precision row; the baselines keep float32 weights."""
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "eager", "--vllm", "off",
                                      "--weight-dtype", "bfloat16"), show=False)
    rows = by_system(result)
    assert result["systems"] == ["transformers", "ours-eager", "ours-eager-wbfloat16"]
    full = weight_bytes(load_model(shipped_model_dir()).model)
    narrow = weight_bytes(load_model(shipped_model_dir(), weight_dtype=torch.bfloat16).model)
    assert narrow < full and result["weight_bytes"] == full
    for b in (1, 2):
        row = rows[("ours-eager-wbfloat16", b)]
        assert row["fast_steps"] == 33  # the narrow model decodes on the fast path too
        # its weight traffic counts its own (narrower) bytes
        assert row["weight_gb_s"] == pytest.approx(narrow / row["tpot_s"] / 1e9)
        assert rows[("ours-eager", b)]["weight_gb_s"] == pytest.approx(full / rows[("ours-eager", b)]["tpot_s"] / 1e9)
    nw = result["narrow_weights"]
    assert nw["dtype"] == "bfloat16" and [(r["system"], r["vs"], r["batch"]) for r in nw["rows"]] == [
        ("ours-eager-wbfloat16", "ours-eager", 1), ("ours-eager-wbfloat16", "ours-eager", 2)]
    for r in nw["rows"]:
        assert 0.0 <= r["agree32_vs_full"] <= 1.0 and r["tok_s_ratio"] > 0
    # the targets are checked on full-precision rows only
    assert bench._checks([{"system": "ours-eager-wbfloat16", "batch": 8, "tok_s": 99.0,
                           "speedup_vs_transformers": 9.0}], {}, None, None)["throughput_2x_at_8_and_32"] is None


def test_unpacked_rows_beside_the_packed_default() -> None:
    """--unpacked adds each step without the oneDNN-packed weight copies, compared with
    the default (packed) row on the same prompts; greedy tokens agree."""
    result = bench.run_benchmark(args("--model", str(shipped_model_dir()), "--steps", "eager", "--vllm", "off",
                                      "--unpacked"), show=False)
    assert result["systems"] == ["transformers", "ours-eager", "ours-eager-unpacked"]
    rows = result["unpacked_weights"]["rows"]
    assert [(r["system"], r["vs"], r["batch"]) for r in rows] == [
        ("ours-eager-unpacked", "ours-eager", 1), ("ours-eager-unpacked", "ours-eager", 2)]
    for r in rows:  # the same float32 arithmetic in another kernel: greedy ties aside, the same tokens
        assert r["agree32_vs_full"] >= 0.95 and r["tok_s_ratio"] > 0
    assert result["narrow_weights"] is None
    assert bench._checks([{"system": "ours-eager-unpacked", "batch": 8, "tok_s": 99.0,
                           "speedup_vs_transformers": 9.0}], {}, None, None)["throughput_2x_at_8_and_32"] is None
