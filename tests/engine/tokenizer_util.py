"""A small byte-level BPE tokenizer and a checkpoint that uses it (for constrained tests)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    '{"color": "red", "ok": true}',
    '{"color": "green", "ok": false}',
    '{"color": "blue", "ok": true}',
    '{"name": "x", "items": [1, 2, 3]}',
] * 20


def train_tokenizer(vocab_size: int = 300) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def constrained_checkpoint(path: Path, seed: int = 0) -> tuple[Path, Tokenizer]:
    """A random Llama whose vocabulary is a trained BPE tokenizer's, eos id 0."""
    from .conftest import build_hf

    tok = train_tokenizer()
    model = build_hf("llama", seed, vocab_size=tok.get_vocab_size(), eos_token_id=0)
    model.save_pretrained(path)
    tok.save(str(path / "tokenizer.json"))
    return path, tok
