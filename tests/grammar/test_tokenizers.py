"""TokenizerInfo from a Hugging Face tokenizer.json (byte-level BPE built here) and the
151k Qwen vocabulary."""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from agentic_llm.benchmarks.grammar import realistic_documents
from agentic_llm.dsl import check_text
from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
from agentic_llm.grammar.walk import check_text as feed
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, plan


def _bpe(tmp_path) -> str:  # type: ignore[no-untyped-def]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([d for _r, d in realistic_documents()] * 20, trainer)
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def test_hf_tokenizer_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    info = TokenizerInfo.from_hf_tokenizer_json(_bpe(tmp_path), vocab_size=640)
    assert info.vocab_size == 640 and info.stop_token_ids
    req, doc = realistic_documents()[1]
    assert info.decode(info.encode(doc)) == doc
    compiler = GrammarCompiler(info)
    p = plan(GenerateRequest.from_json(req))
    ok, where = feed(compiler.matcher_for(p), info.encode(doc))
    assert ok, where
    rng = random.Random(5)
    for _ in range(5):
        r = random_walk(compiler.matcher_for(p, max_string=16), compiler.vocab, rng)
        assert r.completed, r.reason
        assert not [d for d in check_text(r.text, p.validation_policy()) if d.severity == "error"]


def test_qwen_vocabulary(qwen) -> None:  # type: ignore[no-untyped-def]
    assert qwen.vocab_size > 151_000
    assert qwen.token_bytes[qwen.stop_token_ids[0]] == b""  # specials are never text
    text = '### AgenticDSL `/dynamic/x`\n  - id: "é漢"\n'
    assert qwen.decode(qwen.encode(text)) == text
