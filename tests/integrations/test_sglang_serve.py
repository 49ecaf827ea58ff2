"""``serve --backend sglang`` on a machine without a CUDA device: clear refusals."""

from __future__ import annotations

import json

import pytest
import torch

from agentic_llm.cli.main import main
from agentic_llm.integrations.sglang import parse_key
from agentic_llm.integrations.sglang.executor import SGLangOptions, check_runtime, sampling_params
from tests.integrations.conftest import TINY

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


@no_cuda
def test_serve_refuses_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--backend", "sglang", "--model-path", str(TINY), "--tp", "2"]) == 1
    err = capsys.readouterr().err
    assert "ERR_RESOURCE_UNAVAILABLE" in err and "CUDA device" in err


@pytest.mark.parametrize("argv, message", [
    (["serve", "--backend", "sglang"], "--model-path is required"),
    (["serve", "--backend", "sglang", "--model-path", str(TINY), "--tp", "0"], "--tp must be at least 1"),
])
def test_serve_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@no_cuda
def test_executor_refuses_before_starting_sglang() -> None:
    from agentic_llm.errors import AgenticError
    from agentic_llm.integrations.sglang.executor import SGLangExecutor

    with pytest.raises(AgenticError, match="ERR_RESOURCE_UNAVAILABLE"):
        SGLangExecutor(SGLangOptions(model_path=str(TINY)))
    with pytest.raises(AgenticError, match="CUDA"):
        check_runtime(SGLangOptions(model_path=str(TINY)))


def test_sampling_params_carry_the_request_as_an_agentic_dsl_key() -> None:
    req = {"prompt": "p", "target_path": "/dynamic/x"}
    params = sampling_params(req, max_new_tokens=64, temperature=0.0, seed=3)
    key = parse_key(params["ebnf"])
    assert key is not None and json.loads(key.request_json) == req
    assert params["max_new_tokens"] == 64 and params["sampling_seed"] == 3
