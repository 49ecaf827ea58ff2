"""Build a ``tokenizers.Tokenizer`` from a GGUF file's ``tokenizer.ggml.*`` metadata.

Byte-level BPE vocabularies (``tokenizer.ggml.model = "gpt2"``) are supported: the
token strings and merge list are the same ones a ``tokenizer.json`` holds, control
tokens (token type 3) become special added tokens, user-defined ones (type 4) plain
added tokens. ``tokenizer.ggml.pre`` names the pre-tokenizer; the variants that
split digits one by one are listed in ``_DIGIT_SPLITTING``.
"""

from __future__ import annotations

from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["tokenizer_from_metadata", "special_token", "SUPPORTED_TOKENIZER_MODELS"]

SUPPORTED_TOKENIZER_MODELS = ("gpt2",)
_CONTROL, _USER_DEFINED = 3, 4
#: pre-tokenizer names whose models split every digit alone before the byte-level split
_DIGIT_SPLITTING = ("smollm", "starcoder", "refact")


def special_token(metadata: dict[str, Any], role: str) -> str | None:
    """The text of the ``role`` token (``bos``, ``eos``, ``unknown``, ``padding``), if any."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    i = metadata.get(f"tokenizer.ggml.{role}_token_id")
    return str(tokens[int(i)]) if i is not None and 0 <= int(i) < len(tokens) else None


def tokenizer_from_metadata(metadata: dict[str, Any]) -> Any:
    """The tokenizer the metadata describes.

    Raises:
        AgenticError: ERR_UNSUPPORTED_MODEL for another tokenizer model or no vocabulary.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    kind = metadata.get("tokenizer.ggml.model")
    if kind not in SUPPORTED_TOKENIZER_MODELS:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                           f"GGUF tokenizer model {kind!r} is not supported; supported: "
                           f"{', '.join(SUPPORTED_TOKENIZER_MODELS)}", tokenizer_model=kind)
    tokens = [str(t) for t in metadata.get("tokenizer.ggml.tokens") or []]
    if not tokens:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, "the GGUF file has no tokenizer.ggml.tokens")
    merges: list[tuple[str, str]] = []
    for m in metadata.get("tokenizer.ggml.merges") or []:
        left, _, right = str(m).partition(" ")
        merges.append((left, right))
    types = list(metadata.get("tokenizer.ggml.token_type") or [])
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(
        add_prefix_space=bool(metadata.get("tokenizer.ggml.add_space_prefix", False)), use_regex=True)
    if metadata.get("tokenizer.ggml.pre") in _DIGIT_SPLITTING:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False)
                for i, t in enumerate(types) if int(t) == _CONTROL]
    user = [AddedToken(tokens[i], special=False, normalized=False)
            for i, t in enumerate(types) if int(t) == _USER_DEFINED]
    if specials:
        tok.add_special_tokens(specials)
    if user:
        tok.add_tokens(user)
    bos = special_token(metadata, "bos")
    if metadata.get("tokenizer.ggml.add_bos_token") and bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok
