"""Frame the planner's prompt in an instruct model's chat template.

An instruct checkpoint ships a Jinja chat template (``tokenizer_config.json``,
``chat_template.jinja`` or the GGUF key ``tokenizer.chat_template``). The planner's
stable prompt part becomes the system message and the per-request part the user
message, so everything up to the end of the system turn is the same text for every
request and the radix prefix cache keeps sharing its KV pages.

Templates are untrusted input (they come with a downloaded model): they render in
jinja2's immutable sandbox, and a template that fails to render is a clear
``ERR_INVALID_CONFIG``, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner.prompt import STABLE_PROMPT_PREFIX, render_varying_part

if TYPE_CHECKING:
    from agentic_llm.planner.plan import ExecutionPlan

__all__ = ["ChatTemplate", "render_chat_prompt"]


_SYSTEM = STABLE_PROMPT_PREFIX.rstrip("\n")


def _raise(message: str) -> None:
    raise ValueError(message)


@dataclass(frozen=True)
class ChatTemplate:
    """A model's chat template and the special-token texts it may refer to.

    Args:
        source: the Jinja source.
        bos_token, eos_token: texts bound to the template's ``bos_token`` /
            ``eos_token`` variables.
    """

    source: str
    bos_token: str = ""
    eos_token: str = ""

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise AgenticError(ErrorCode.INVALID_CONFIG, "chat template is empty")

    @classmethod
    def from_loaded(cls, loaded: Any) -> ChatTemplate | None:
        """The template of a ``LoadedModel`` (None when the checkpoint ships none)."""
        source = getattr(loaded, "chat_template", None)
        if not source:
            return None
        specials = getattr(loaded, "special_tokens", None) or {}
        return cls(source, specials.get("bos", ""), specials.get("eos", ""))

    @classmethod
    def from_engine(cls, engine: Any) -> ChatTemplate | None:
        """The template of the model an ``LLMEngine`` (or compatible) runs, if any."""
        return cls.from_loaded(getattr(engine, "loaded", None))

    @cached_property
    def _compiled(self) -> Any:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        try:
            return env.from_string(self.source)
        except TemplateError as exc:
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"chat template does not parse: {exc}") from exc

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The template applied to ``messages`` (role/content dicts).

        Raises:
            AgenticError: ERR_INVALID_CONFIG when the template fails to render.
        """
        try:
            return str(self._compiled.render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token))
        except Exception as exc:  # a template error, sandbox refusal or raise_exception
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"chat template failed to render: {exc}") from exc

    def frame(self, system: str, user: str) -> str:
        """One system and one user turn, ending where the assistant's answer starts."""
        return self.render([{"role": "system", "content": system}, {"role": "user", "content": user}])

    @cached_property
    def stable_prefix(self) -> str:
        """The rendered text every planner prompt starts with (the system turn and its
        framing): what the prefix cache shares between requests."""
        a = self.frame(_SYSTEM, "A")
        b = self.frame(_SYSTEM, "B")
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return a[:n]


def render_chat_prompt(plan: ExecutionPlan, template: ChatTemplate) -> str:
    """The planner's prompt for ``plan`` in ``template``: the stable part as the system
    message, the per-request part (tools with their descriptions, context, goal) as
    the user message."""
    return template.frame(_SYSTEM, render_varying_part(plan, descriptions=True).rstrip("\n"))
