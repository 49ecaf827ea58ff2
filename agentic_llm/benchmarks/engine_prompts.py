"""Which prompts each call of ``bench engine``'s throughput part runs.

Every system sees the same sequence of calls, and no call repeats a prompt an earlier
call ran: a warm-up set, then for each batch size ``b`` and round ``r`` a set of ``b``
prompts for the TTFT call (one output token) and a set of ``b`` prompts for the
measured call. A system with a prefix cache (ours, as ``serve`` builds it; vLLM by
default) may reuse what the prompts share with earlier calls (the system prompt), as
it would serving new requests, but never a whole prompt. Round ``r`` runs the same
prompts on every system, so greedy outputs are compared on identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler.branch_aware import common_prefix_len

__all__ = ["PromptSchedule", "distinct", "prompt_schedule", "shared_prefix"]


@dataclass(frozen=True)
class PromptSchedule:
    """Indices into the bench's prompt list.

    Attributes:
        warm: prompts of the warm-up calls (first-call allocations, compiled step).
        rounds: ``(batch, round) -> (ttft, measured)`` index lists, ``batch`` each.
    """

    warm: list[int]
    rounds: dict[tuple[int, int], tuple[list[int], list[int]]] = field(default_factory=dict)

    @property
    def needed(self) -> int:
        """Distinct prompts the schedule uses."""
        return len(self.warm) + sum(len(t) + len(m) for t, m in self.rounds.values())

    def describe(self) -> dict[str, Any]:
        """The protocol as the JSON result records it."""
        return {
            "distinct_prompts": self.needed,
            "warm_prompts": len(self.warm),
            "per_round": "a TTFT call (1 output token) on `batch` prompts, then the measured call on "
                         "`batch` other prompts; no prompt repeats across calls within a system",
            "same_prompts_across_systems": True,
        }


def prompt_schedule(batches: list[int], repeat: int, *, warm: int = 2) -> PromptSchedule:
    """Consecutive, disjoint index sets: ``warm`` for warm-up, then per batch and round
    the TTFT set and the measured set."""
    nxt = warm
    rounds: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for b in batches:
        for r in range(repeat):
            ttft = list(range(nxt, nxt + b))
            measured = list(range(nxt + b, nxt + 2 * b))
            rounds[(b, r)] = (ttft, measured)
            nxt += 2 * b
    return PromptSchedule(warm=list(range(warm)), rounds=rounds)


def distinct(prompts: list[list[int]], items: list[Any], needed: int) -> tuple[list[list[int]], list[Any]]:
    """The first ``needed`` distinct prompts (token for token) and their items.

    Raises:
        AgenticError: ERR_INVALID_CONFIG when fewer than ``needed`` are distinct.
    """
    seen: set[tuple[int, ...]] = set()
    out_p: list[list[int]] = []
    out_i: list[Any] = []
    for p, it in zip(prompts, items, strict=True):
        key = tuple(p)
        if key in seen:
            continue
        seen.add(key)
        out_p.append(p)
        out_i.append(it)
        if len(out_p) == needed:
            return out_p, out_i
    raise AgenticError(ErrorCode.INVALID_CONFIG,
                       f"bench engine needs {needed} distinct prompts (warm-up, then a TTFT and a measured set "
                       f"per batch and round) and the requests give {len(out_p)}: pass more with --requests, "
                       "or lower --repeat or --batches")


def shared_prefix(prompt: list[int], earlier: list[list[int]]) -> int:
    """Longest prefix ``prompt`` shares with any prompt in ``earlier`` (tokens)."""
    return max((common_prefix_len([prompt, e]) for e in earlier), default=0)
