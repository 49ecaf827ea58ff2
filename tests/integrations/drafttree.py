"""Random draft trees and fresh-replay masks, shared by the matcher and SGLang tests.

A draft tree is given the way EAGLE gives it to SGLang's ``traverse_tree``: token
ids per node and first-child / next-sibling links (-1 for none); node 0 is the
token already accepted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from agentic_llm.grammar.vocab import VocabIndex


@dataclass
class DraftTree:
    tokens: list[int]
    first_child: list[int]
    next_sibling: list[int]
    parent: list[int]

    def path(self, node: int) -> list[int]:
        """Tokens from the root's child down to ``node`` (the root is already accepted)."""
        out: list[int] = []
        while node > 0:
            out.append(self.tokens[node])
            node = self.parent[node]
        return out[::-1]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.first_child), torch.tensor(self.next_sibling),
                torch.tensor(self.tokens))


def allowed_ids(row: torch.Tensor | np.ndarray, vocab_size: int) -> np.ndarray:
    words = row.numpy() if isinstance(row, torch.Tensor) else row
    ids = VocabIndex.ids_in(np.ascontiguousarray(words).view(np.uint32))
    return ids[ids < vocab_size]


def random_tree(rng: random.Random, mask_at: Callable[[list[int]], np.ndarray], root_token: int,
                stops: set[int], *, depth: int, width: int, max_nodes: int = 24) -> DraftTree:
    """A tree whose children are mostly allowed tokens (stop tokens preferred when
    allowed, so trees run past a document's end) and sometimes a disallowed one.
    ``mask_at(path)`` gives the allowed ids after ``path``."""
    tree = DraftTree([root_token], [-1], [-1], [-1])

    def grow(node: int, d: int) -> None:
        if d >= depth or len(tree.tokens) >= max_nodes:
            return
        allowed = mask_at(tree.path(node))
        if allowed.size == 0:
            return
        picks: list[int] = [t for t in allowed.tolist() if t in stops][:1]
        for _ in range(rng.randint(1, width)):
            picks.append(int(allowed[rng.randrange(allowed.size)]))
        if rng.random() < 0.3:
            picks.append(rng.randrange(3, 3072))  # maybe not allowed: traversal skips it
        ok = set(allowed.tolist())
        prev = -1
        for tok in dict.fromkeys(picks):
            if len(tree.tokens) >= max_nodes:
                break
            child = len(tree.tokens)
            tree.tokens.append(tok)
            tree.first_child.append(-1)
            tree.next_sibling.append(-1)
            tree.parent.append(node)
            if prev < 0:
                tree.first_child[node] = child
            else:
                tree.next_sibling[prev] = child
            prev = child
        c = tree.first_child[node]
        while c != -1:
            if tree.tokens[c] in ok and tree.tokens[c] not in stops:
                grow(c, d + 1)
            c = tree.next_sibling[c]

    grow(0, 0)
    return tree
