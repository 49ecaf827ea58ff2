"""Compute a prompt prefix once when requests prefilled in the same step share it.

Agentic prompts put a long stable part first (instructions, tool and library
listings), so requests admitted together often start with the same full KV pages.
Without a prefix cache, each would compute those pages itself. Here a fresh row
whose leading full pages equal those of an earlier fresh row in the same step
computes only the rest of its chunk: for this step's attention its block table
points at the earlier row's pages for the shared part, and once the forward has
written them they are copied into the row's own pages (one copy over every layer),
so after the step every request owns complete pages, exactly as if it had computed
them itself. A row always computes at least its last token (its logits are needed).

The K/V of a position depend only on the tokens up to it, so the values are the
same; like batching itself this may change the last bits of floating-point sums.
Not used while decoder hooks are registered: hooks must see every token of a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentic_llm.scheduler import ScheduledRow

__all__ = ["SharedPrefill", "plan_shared_prefill"]


@dataclass
class SharedPrefill:
    """The step's forward chunks and the page copies to make after the forward.

    Attributes:
        chunks: per row ``(token_ids, start, block_table)`` as the forward computes it.
        src_blocks, dst_blocks: pages to copy (every layer) once the forward is done.
        shared_tokens: prompt tokens not computed thanks to sharing.
    """

    chunks: list[tuple[list[int], int, list[int]]]
    src_blocks: list[int] = field(default_factory=list)
    dst_blocks: list[int] = field(default_factory=list)
    shared_tokens: int = 0


def plan_shared_prefill(rows: list[ScheduledRow], block_size: int, enabled: bool = True) -> SharedPrefill:
    """Chunks for ``rows``, sharing leading full pages between fresh prefill rows."""
    bs = block_size
    plan = SharedPrefill(chunks=[])
    # chain hash of the first k pages of a row -> (row index, that row's tokens)
    donors: dict[int, tuple[int, list[int]]] = {}
    tables: list[list[int]] = []  # per row, the block table the forward reads
    for i, r in enumerate(rows):
        req = r.request
        toks = req.token_ids[r.start : r.start + r.num_tokens]
        table = req.block_table
        full = len(toks) // bs if enabled and r.start == 0 else 0
        if full == 0:
            plan.chunks.append((toks, r.start, table))
            tables.append(table)
            continue
        hashes: list[int] = []
        h = 0
        for b in range(full):
            h = hash((h, tuple(toks[b * bs : (b + 1) * bs])))
            hashes.append(h)
        # the longest shared run of pages, keeping at least this row's last token
        shared, donor = 0, -1
        for b in range(min(full, (len(toks) - 1) // bs), 0, -1):
            hit = donors.get(hashes[b - 1])
            if hit is not None and hit[1][: b * bs] == toks[: b * bs]:
                shared, donor = b, hit[0]
                break
        if shared:
            eff = tables[donor][:shared] + table[shared:]
            plan.src_blocks.extend(tables[donor][:shared])
            plan.dst_blocks.extend(table[:shared])
            plan.shared_tokens += shared * bs
            plan.chunks.append((toks[shared * bs :], shared * bs, eff))
            tables.append(eff)
        else:
            plan.chunks.append((toks, 0, table))
            tables.append(table)
        for b in range(full):
            donors.setdefault(hashes[b], (i, toks))
    return plan
