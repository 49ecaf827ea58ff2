"""An instruct model's chat template frames the planner's prompt; the stable prefix stays shared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentic_llm.engine.loader import load_model
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.models import shipped_model_dir
from agentic_llm.planner import STABLE_PROMPT_PREFIX, GenerateRequest, plan
from agentic_llm.planner.chat import ChatTemplate

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


def req(prompt: str, tools: list[str], **kw) -> GenerateRequest:  # type: ignore[no-untyped-def]
    return GenerateRequest.from_json({
        "target_path": "/dynamic/plan_1", "prompt": prompt,
        "tools": [{"name": t, "arguments": [{"name": "query"}]} for t in tools], **kw})


def test_frame_is_system_then_user_then_assistant_start() -> None:
    t = ChatTemplate(CHATML)
    assert t.frame("S", "U") == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_prompts_share_the_framed_stable_prefix() -> None:
    t = ChatTemplate(CHATML)
    a = plan(req("Search the web for llamas", ["web_search"])).render_prompt(t)
    b = plan(req("Book a table in Rome", ["book", "notify"])).render_prompt(t)
    assert a != b
    prefix = t.stable_prefix
    assert a.startswith(prefix) and b.startswith(prefix)
    assert STABLE_PROMPT_PREFIX.rstrip("\n") in prefix  # the whole rule text is shared
    assert prefix.startswith("<|im_start|>system\n")
    assert "TOOLS:" in a[len(prefix):] and "Search the web for llamas" in a[len(prefix):]
    # token level: what the radix cache sees
    tok = load_model(shipped_model_dir()).tokenizer
    assert tok is not None
    shared = len(tok.encode(prefix).ids) - 1  # the last token may merge across the boundary
    assert shared > 50
    assert tok.encode(a).ids[:shared] == tok.encode(b).ids[:shared]


def test_raw_prompt_flag_and_no_template_give_the_plain_prompt() -> None:
    t = ChatTemplate(CHATML)
    p = plan(req("Search", ["web_search"], flags={"raw_prompt": True}))
    assert p.render_prompt(t) == p.render_prompt() and p.render_prompt().startswith(STABLE_PROMPT_PREFIX)
    assert plan(req("Search", ["web_search"])).render_prompt(None).startswith(STABLE_PROMPT_PREFIX)
    assert GenerateRequest.from_json(p.request.to_json()).flags.raw_prompt


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",   # sandbox: no attribute escapes
    "{{ raise_exception('only user and assistant roles') }}",
    "{% for x in %}",                                   # does not parse
])
def test_bad_or_hostile_template_is_a_clear_error(source: str) -> None:
    with pytest.raises(AgenticError) as e:
        ChatTemplate(source).frame("S", "U")
    assert e.value.code is ErrorCode.INVALID_CONFIG


def test_hf_checkpoint_template_is_read_and_used(tmp_path: Path) -> None:
    from agentic_llm.serving.local import LocalGenerator

    d = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), d)
    (d / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": [{"name": "default", "template": CHATML}], "eos_token": {"content": "</s>"}}))
    loaded = load_model(d)
    assert loaded.chat_template == CHATML and loaded.special_tokens == {"eos": "</s>"}
    request = req("Search the web for llamas", ["web_search"]).to_json()
    request.setdefault("budget", {})["max_tokens"] = 64
    gen = LocalGenerator(d, max_num_seqs=1)
    plain = LocalGenerator(d, max_num_seqs=1, chat_template=False)
    try:
        chat = gen.pipeline.parts.chat
        assert chat is not None and plain.pipeline.parts.chat is None
        [framed] = gen.generate([request])
        [raw] = plain.generate([request])
    finally:
        gen.close()
        plain.close()
    assert framed.timings is not None and raw.timings is not None
    tok = loaded.tokenizer
    assert tok is not None
    p = plan(GenerateRequest.from_json(request))
    assert framed.timings.prompt_tokens == len(tok.encode(p.render_prompt(chat)).ids)
    assert raw.timings.prompt_tokens == len(tok.encode(p.render_prompt()).ids)
    assert framed.timings.prompt_tokens > raw.timings.prompt_tokens


def test_smollm2_gguf_template_frames_the_prompt() -> None:
    from agentic_llm.engine.gguf import open_gguf
    from agentic_llm.engine.gguf.tokenizer import special_token
    from tests.engine.gguf_util import smollm2_gguf

    meta = open_gguf(smollm2_gguf()).metadata
    t = ChatTemplate(meta["tokenizer.chat_template"], special_token(meta, "bos") or "",
                     special_token(meta, "eos") or "")
    text = plan(req("Search the web for llamas", ["web_search"])).render_prompt(t)
    assert text.startswith("<|im_start|>system\nWrite one AgenticDSL block")
    assert "<|im_start|>user\nTARGET: /dynamic/plan_1" in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "You are a helpful AI assistant" not in text  # our system turn replaces the default
