"""Importing SGLang's grammar, plugin and speculative modules on a CPU machine.

SGLang is installed with ``--no-deps`` plus a few pure-Python modules
(requirements/sglang-cpu-test.txt). ``spec_utils`` reaches
``sglang.srt.multimodal.internvl_utils``, which imports torchvision at module
level; the CPU torch here has no matching torchvision build, and nothing the tests
call uses it. ``import_spec_utils`` therefore puts a stub ``torchvision`` in
``sys.modules`` for the duration of that import only and removes it afterwards.
transformers' ``is_torchvision_available()`` (cached) is evaluated first, so
transformers keeps treating torchvision as absent.

Importing SGLang also points torch inductor's and triton's cache directories at
SGLang's own (environment variables); ``load_sglang`` puts the environment back, so
the rest of the suite (the compiled decode step) is unaffected in the same worker.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from typing import Any

__all__ = ["import_spec_utils", "load_sglang"]

_STUBS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def _stub_module(name: str) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__path__ = []
    return m


def import_spec_utils() -> Any:
    """``sglang.srt.speculative.spec_utils``, imported with torchvision stubbed."""
    if "sglang.srt.speculative.spec_utils" in sys.modules:
        return sys.modules["sglang.srt.speculative.spec_utils"]
    from transformers.utils.import_utils import is_torchvision_available

    is_torchvision_available()  # cache the real answer before the stub exists
    if any(name in sys.modules for name in _STUBS):
        return importlib.import_module("sglang.srt.speculative.spec_utils")
    tv, tr, tf = (_stub_module(n) for n in _STUBS)
    tv.transforms, tr.functional = tr, tf  # type: ignore[attr-defined]

    class _Transform:  # the names internvl_utils binds at import; never called here
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("torchvision is stubbed in the SGLang contract tests")

    for name in ("Compose", "Normalize", "Resize", "ToTensor", "Lambda", "CenterCrop"):
        setattr(tr, name, _Transform)
    mode = types.SimpleNamespace(NEAREST=0, BILINEAR=2, BICUBIC=3)
    tr.InterpolationMode = tf.InterpolationMode = mode  # type: ignore[attr-defined]
    sys.modules.update(zip(_STUBS, (tv, tr, tf), strict=True))
    try:
        return importlib.import_module("sglang.srt.speculative.spec_utils")
    finally:
        for name in _STUBS:
            sys.modules.pop(name, None)


_MODULES = ("sglang.srt.constrained.base_grammar_backend", "sglang.srt.constrained.grammar_manager",
            "sglang.srt.constrained.xgrammar_backend", "sglang.srt.plugins",
            "sglang.srt.arg_groups.choices", "sglang.srt.sampling.sampling_batch_info")


def load_sglang() -> None:
    """Import every SGLang module the tests use, leaving ``os.environ`` as it was."""
    saved = dict(os.environ)
    try:
        import_spec_utils()
        for name in _MODULES:
            importlib.import_module(name)
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
