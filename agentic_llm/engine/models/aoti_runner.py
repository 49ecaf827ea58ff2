"""Runs an AOTInductor-compiled CPU model with the GIL released.

``torch._inductor.aoti_load_package`` calls the compiled model through a binding
that holds the GIL for the whole call, so a Python thread filling constraint masks
cannot run beside it. The compiled library also exports a plain C interface
(``AOTInductorModelContainerRun``); calling that through :mod:`ctypes` releases the
GIL for the call.

One more thing would take the GIL back inside the call: a tensor that Python also
references takes the GIL whenever its C++ reference count drops to one (the Python
object must then be released), and the compiled code does that to every input handle
it is given, and to the storage of every input it views. So each call holds one
extra C++ reference to every input tensor until the call is over, and tensors that
stay the same from call to call (weights) are pinned once with :meth:`GilFreeRunner.pin`,
which also holds a view of each (keeping its storage's count above one). Making
those views costs a GIL release per tensor, which is why it is done once, not per call.

Only CPU packages whose constants live in the library are run this way (the decode
step passes its weights as inputs, so it has no constants); for anything else
:func:`load_gil_free` returns None and the caller keeps the ordinary loader.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["GilFreeRunner", "flat_inputs", "load_gil_free"]

log = logging.getLogger(__name__)

# torch's helpers that turn tensors into owned C handles and back (absent in torch
# builds without AOTInductor: the runner is then never made). They are private
# (torch._C) because torch offers no public way to hand a tensor to C code as an
# owned handle; they are the ones torch's own AOTInductor runner uses, so they
# follow the handle layout of the compiled library built by the same torch.
_aoti: Any = getattr(torch._C, "_aoti", None)
_steal_back: Any = getattr(_aoti, "alloc_tensors_by_stealing_from_void_ptrs", None)
_new_handles: Any = getattr(_aoti, "unsafe_alloc_void_ptrs_from_tensors", None)

_capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_ptr.restype = ctypes.c_void_p
_capsule_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class GilFreeRunner:
    """One compiled model container, called through its C interface.

    Args:
        so_path: the compiled model library (from an AOTInductor package).

    Raises:
        OSError: the library cannot be loaded or its container cannot be created.
    """

    def __init__(self, so_path: Path) -> None:
        self._lib = ctypes.CDLL(str(so_path))  # CDLL calls release the GIL
        self._handle = ctypes.c_void_p()
        rc = self._lib.AOTInductorModelContainerCreateWithDevice(
            ctypes.byref(self._handle), ctypes.c_size_t(1), b"cpu", None)
        if rc != 0:
            raise OSError(f"AOTInductorModelContainerCreateWithDevice returned {rc}")
        n_in, n_out = ctypes.c_size_t(), ctypes.c_size_t()
        if (self._lib.AOTInductorModelContainerGetNumInputs(self._handle, ctypes.byref(n_in))
                or self._lib.AOTInductorModelContainerGetNumOutputs(self._handle, ctypes.byref(n_out))):
            raise OSError("cannot read the container's input and output counts")
        self.num_inputs, self.num_outputs = n_in.value, n_out.value
        run = self._lib.AOTInductorModelContainerRun
        run.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        run.restype = ctypes.c_int32
        self._run = run
        self._run_address = ctypes.cast(run, ctypes.c_void_p).value
        self._ring: Any = False  # run_ringing, looked up at first use (None: not built here)
        self._in_type = ctypes.c_void_p * self.num_inputs
        self._out_type = ctypes.c_void_p * self.num_outputs
        self._pin_handles: list[Any] = []
        self._pin_views: list[torch.Tensor] = []
        self._pinned: set[int] = set()

    def pin(self, tensors: list[torch.Tensor]) -> None:
        """Hold references to ``tensors`` (the inputs that stay the same from call to
        call) until the next :meth:`pin` or :meth:`close`; calls then skip them."""
        self._unpin()
        self._pin_views = [t.view(t.shape) for t in tensors]
        self._pin_handles = _new_handles(tensors)
        self._pinned = {id(t) for t in tensors}

    def _unpin(self) -> None:
        handles = getattr(self, "_pin_handles", None)
        if handles:
            _steal_back(handles)
        self._pin_handles = []
        self._pin_views = []
        self._pinned = set()

    def __call__(self, inputs: list[torch.Tensor],
                 before: Callable[[], int | None] | None = None) -> list[torch.Tensor]:
        """Run on the flat input list; returns the flat outputs. ``before`` is called
        right before the GIL is released; when it returns the address of an int64
        counter (a waiting mask worker's), the call bumps that counter from C once
        the GIL is free (``native.run_ringing``)."""
        if len(inputs) != self.num_inputs:
            raise ValueError(f"the compiled model takes {self.num_inputs} inputs, got {len(inputs)}")
        pinned = self._pinned
        pins = _new_handles([t for t in inputs if id(t) not in pinned])  # see the module docstring
        stolen = _new_handles(inputs)  # the handles the call takes over
        args = self._in_type(*[_capsule_ptr(c, None) for c in stolen])
        out = self._out_type()
        try:
            bell = before() if before is not None else None
            # without the C helpers no worker waits on a bell: nothing to ring
            ring = self._ringing() if bell else None
            if ring is not None:
                rc = ring(self._run_address, self._handle, args, self.num_inputs, out, self.num_outputs,
                          None, None, bell)
            else:
                rc = self._run(self._handle, args, self.num_inputs, out, self.num_outputs, None, None)
        finally:
            _steal_back(pins)
        if rc != 0:
            raise RuntimeError(f"the compiled model failed (AOTInductorModelContainerRun returned {rc})")
        return _steal_back([_capsule_new(out[i], None, None) for i in range(self.num_outputs)])

    def _ringing(self) -> Any:
        if self._ring is False:
            from agentic_llm.engine.native import native_library

            lib = native_library()
            self._ring = lib.run_ringing if lib is not None else None
        return self._ring

    def close(self) -> None:
        """Drop the pins and free the container (the library stays loaded)."""
        self._unpin()
        if self._handle:
            self._lib.AOTInductorModelContainerDelete(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing left to free into
            self.close()


def load_gil_free(package: Path, workdir: Path) -> GilFreeRunner | None:
    """A :class:`GilFreeRunner` for a CPU AOTInductor package, or None when the
    package is not one this runner handles (several libraries, separate weight
    files) or the library cannot be loaded."""
    if _steal_back is None or _new_handles is None:
        log.info("this torch build has no AOTInductor tensor-handle helpers; using the loader")
        return None
    try:
        with zipfile.ZipFile(package) as z:
            names = z.namelist()
            libs = [n for n in names if n.endswith(".so")]
            extra = [n for n in names if "/aotinductor/" in n and not n.endswith((".so", ".cpp", ".json"))]
            if len(libs) != 1 or extra:
                log.info("AOTInductor package %s: %d libraries, %d other files; using the loader",
                         package, len(libs), len(extra))
                return None
            target = workdir / Path(libs[0]).name
            target.write_bytes(z.read(libs[0]))
        return GilFreeRunner(target)
    except (OSError, zipfile.BadZipFile, AttributeError) as exc:
        log.info("AOTInductor package %s cannot run through its C interface: %s", package, exc)
        return None


def flat_inputs(args: tuple[Any, ...]) -> list[torch.Tensor]:
    """The tensors of ``args`` in the order an exported program takes them (nested
    lists and tuples flattened, None entries dropped)."""
    out: list[torch.Tensor] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out += flat_inputs(tuple(a))
        elif a is not None:
            out.append(a)
    return out
