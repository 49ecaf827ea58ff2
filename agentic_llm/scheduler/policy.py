"""Scheduling policies: who is admitted, who runs first, who is preempted.

A policy only orders requests; the scheduler enforces memory and token budgets.
Policies register under the registry kind ``"scheduling_policy"`` and are chosen by
name (``fcfs`` is the default), so a branch-aware policy plugs in without touching
the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentic_llm import registry
from agentic_llm.scheduler.request import Request

__all__ = ["POLICY_KIND", "SchedulingPolicy", "FCFSPolicy", "get_policy"]

POLICY_KIND = "scheduling_policy"


class SchedulingPolicy(Protocol):
    """Orders requests for the scheduler."""

    def order_waiting(self, waiting: Sequence[Request], running: Sequence[Request]) -> list[Request]:
        """Waiting requests in the order to try admitting them.

        Admission stops at the first request that does not fit, so the order is
        also the policy's fairness rule.
        """
        ...

    def order_running(self, running: Sequence[Request]) -> list[Request]:
        """Running requests in the order they get KV slots and token budget."""
        ...

    def choose_victim(self, candidates: Sequence[Request]) -> Request:
        """The request to preempt (recompute later) when KV blocks run out."""
        ...


@registry.register(POLICY_KIND, "fcfs")
class FCFSPolicy:
    """First come, first served; the newest running request is preempted first."""

    def order_waiting(self, waiting: Sequence[Request], running: Sequence[Request]) -> list[Request]:
        return sorted(waiting, key=lambda r: r.seq_no)

    def order_running(self, running: Sequence[Request]) -> list[Request]:
        return sorted(running, key=lambda r: r.seq_no)

    def choose_victim(self, candidates: Sequence[Request]) -> Request:
        return max(candidates, key=lambda r: r.seq_no)


def get_policy(name: str = "fcfs", options: Mapping[str, Any] | None = None) -> SchedulingPolicy:
    """An instance of the policy registered as ``name``, built with ``options`` (its
    constructor's keyword arguments, e.g. ``coalesce_steps`` of ``branch_aware``).

    Raises:
        ValueError: an option the policy does not take, or a value it refuses.
    """
    cls = registry.get(POLICY_KIND, name)
    try:
        policy: SchedulingPolicy = cls(**dict(options or {}))
    except TypeError as exc:  # an unknown keyword
        raise ValueError(f"scheduling policy {name!r}: {exc}") from None
    return policy
