"""Subgraph signatures: the string form ``"(a: number) -> sum: number"`` and the
structured ``inputs`` / ``outputs`` form, both read into one :class:`Signature`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = [
    "Param",
    "Signature",
    "SignatureSyntaxError",
    "parse_signature",
    "signature_from_mapping",
    "STABILITIES",
]

STABILITIES = ("stable", "experimental", "deprecated")
_ATTR_VALUE = re.compile(r"^[A-Za-z0-9_.+\-]+\Z")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class SignatureSyntaxError(AgenticError):
    """A signature that neither form can read (code ``ERR_SIGNATURE_SYNTAX``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.SIGNATURE_SYNTAX, message)


def _check_stability(stability: Any) -> Any:
    """``stability`` itself when it is None or one of STABILITIES (both signature forms)."""
    if stability is not None and stability not in STABILITIES:
        raise SignatureSyntaxError(
            f"stability must be one of {', '.join(STABILITIES)}, not {stability!r}"
        )
    return stability


@dataclass(frozen=True)
class Param:
    """One input or output of a signature.

    Attributes:
        name: the context key (``[A-Za-z_][A-Za-z0-9_]*``).
        type: a type expression such as ``number``, ``array[string]``, ``string|null``;
            None when the signature leaves it open.
        required: False for an optional input (``name?: type``).
    """

    name: str
    type: str | None = None
    required: bool = True

    def to_string(self) -> str:
        opt = "" if self.required else "?"
        typ = f": {self.type}" if self.type is not None else ""
        return f"{self.name}{opt}{typ}"


@dataclass(frozen=True)
class Signature:
    """A subgraph's contract: inputs it reads, outputs it writes, version, stability."""

    inputs: tuple[Param, ...] = ()
    outputs: tuple[Param, ...] = ()
    version: str | None = None
    stability: str | None = None

    def to_string(self) -> str:
        """The canonical string form (what :func:`agentic_llm.dsl.dumps` writes)."""
        text = "(" + ", ".join(p.to_string() for p in self.inputs) + ")"
        if len(self.outputs) == 1:
            text += " -> " + self.outputs[0].to_string()
        elif self.outputs:
            text += " -> (" + ", ".join(p.to_string() for p in self.outputs) + ")"
        if self.version is not None:
            text += f"; version={self.version}"
        if self.stability is not None:
            text += f"; stability={self.stability}"
        return text

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.outputs)

    def __str__(self) -> str:
        return self.to_string()


class _ToSignature(Transformer[Token, Any]):
    def start(self, items: list[Any]) -> Signature:
        params, outputs, *attrs = items
        fields: dict[str, str] = {}
        for key, value in attrs:
            if key not in ("version", "stability"):
                raise SignatureSyntaxError(
                    f"unknown signature attribute {key!r}; only version= and stability= exist"
                )
            if key in fields:
                raise SignatureSyntaxError(f"signature attribute {key!r} given twice")
            fields[key] = value
        return Signature(
            inputs=tuple(params or ()),
            outputs=tuple(outputs or ()),
            version=fields.get("version"),
            stability=_check_stability(fields.get("stability")),
        )

    def returns(self, items: list[Any]) -> tuple[Param, ...]:
        return tuple(items[0])

    def single_output(self, items: list[Any]) -> tuple[Param, ...]:
        return (items[0],)

    def output_list(self, items: list[Any]) -> tuple[Param, ...]:
        return tuple(items[0] or ())

    def param_list(self, items: list[Any]) -> list[Param]:
        return list(items)

    def param(self, items: list[Any]) -> Param:
        name, optional, typ = items
        return Param(name=str(name), type=typ, required=optional is None)

    def type(self, items: list[Any]) -> str:
        return "|".join(items)

    def type_atom(self, items: list[Any]) -> str:
        name, *args = items
        args = [a for a in args if a is not None]
        return f"{name}[{','.join(args)}]" if args else str(name)

    def attr(self, items: list[Any]) -> tuple[str, str]:
        return str(items[0]), str(items[1])


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("agentic_llm.dsl").joinpath("grammars/signature.lark").read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=True)


@lru_cache(maxsize=4096)
def parse_signature(text: str) -> Signature:
    """Read the string form, e.g. ``"(a: number, b: number) -> sum: number"``.

    Raises:
        SignatureSyntaxError: the text is not a signature.
    """
    if not isinstance(text, str):
        raise SignatureSyntaxError(f"a signature string is expected, not {type(text).__name__}")
    if len(text) > 4096:
        raise SignatureSyntaxError("signature longer than 4096 characters")
    try:
        tree = _parser().parse(text)
        result = _ToSignature().transform(tree)
    except SignatureSyntaxError:
        raise
    except LarkError as exc:
        orig = getattr(exc, "orig_exc", None)
        if isinstance(orig, SignatureSyntaxError):
            raise orig from None
        raise SignatureSyntaxError(
            f"cannot read signature {text!r}: expected the form "
            f"'(name: type, ...) -> name: type' ({type(exc).__name__})"
        ) from None
    assert isinstance(result, Signature)  # the transformer's start rule returns one
    return result


def _param_from_mapping(item: Any, where: str) -> Param:
    if not isinstance(item, Mapping):
        raise SignatureSyntaxError(f"each signature {where} entry must be a mapping with a name")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SignatureSyntaxError(
            f"signature {where} entry needs a name matching [A-Za-z_][A-Za-z0-9_]*, got {name!r}"
        )
    typ = item.get("type")
    if typ is None and isinstance(item.get("schema"), Mapping):
        typ = item["schema"].get("type")
    if typ is not None:
        if not isinstance(typ, str):
            raise SignatureSyntaxError(f"type of {where} {name!r} must be a string")
        typ = parse_signature(f"(x: {typ})").inputs[0].type
    required = item.get("required", True)
    if not isinstance(required, bool):
        raise SignatureSyntaxError(f"'required' of {where} {name!r} must be true or false")
    return Param(name=name, type=typ, required=required)


def signature_from_mapping(value: Mapping[str, Any]) -> Signature:
    """Read the structured form (``inputs``, ``outputs``, ``version``, ``stability``).

    Per-parameter ``schema`` and ``description`` entries are not kept: the runtime reads
    signatures in the string form, which has no place for them.
    """
    unknown = set(value) - {"inputs", "outputs", "version", "stability"}
    if unknown:
        raise SignatureSyntaxError(
            f"unknown signature keys: {', '.join(sorted(map(str, unknown)))}"
        )
    inputs = value.get("inputs") or []
    outputs = value.get("outputs") or []
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise SignatureSyntaxError("signature inputs and outputs must be lists")
    version = value.get("version")
    if version is not None:
        version = str(version)
        if not _ATTR_VALUE.match(version):
            raise SignatureSyntaxError(
                f"signature version {version!r} may use only [A-Za-z0-9_.+-]"
            )
    stability = _check_stability(value.get("stability"))
    return Signature(
        inputs=tuple(_param_from_mapping(i, "input") for i in inputs),
        outputs=tuple(_param_from_mapping(o, "output") for o in outputs),
        version=version,
        stability=stability,
    )
