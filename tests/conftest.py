"""Suite-wide settings.

With ``AGENTIC_REQUIRE_ALL_COMPONENTS=1`` (set by ``.ci/run``), a test skipped
because a component is missing (redis-server, a package) fails instead: in CI every
real component must be there. Only tests marked ``gpu`` may skip, since CI has no GPU.

Where a test names no model, it runs on the shipped ``agentic-tiny`` (fast), not on
the default a user gets (SmolLM2 with the shipped adapter, when installed): the
suite sets ``AGENTIC_MODEL_DIR`` unless the caller did. Tests of the default itself
clear it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

REQUIRE_ALL = os.environ.get("AGENTIC_REQUIRE_ALL_COMPONENTS") == "1"

if not os.environ.get("AGENTIC_MODEL_DIR"):
    from agentic_llm.models import shipped_model_dir

    os.environ["AGENTIC_MODEL_DIR"] = str(shipped_model_dir())

if not os.environ.get("AGENTIC_COMPILE_CACHE_DIR"):
    _compile_cache = tempfile.mkdtemp(prefix="agentic-compile-cache-")
    os.environ["AGENTIC_COMPILE_CACHE_DIR"] = _compile_cache
    atexit.register(shutil.rmtree, _compile_cache, True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and "gpu" not in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every component must be present: {report.longrepr}"
