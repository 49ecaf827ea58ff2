"""Parse and validate cached subgraph text, remembering the answers.

Parsing and validation are pure functions of the text (and the policy), so both are
memoised in small LRU maps; a cache hit then costs a dictionary lookup instead of a
parse and a validation.
"""

from __future__ import annotations

from collections import OrderedDict

from agentic_llm.dsl import Document, DSLParseError, ValidationPolicy, has_errors, parse, validate

__all__ = ["Checker"]


class Checker:
    """``check(text, policy) -> (document or None, problem)`` with bounded memo tables."""

    def __init__(self, *, max_docs: int = 1024, max_verdicts: int = 4096) -> None:
        self.max_docs = max_docs
        self.max_verdicts = max_verdicts
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._verdicts: OrderedDict[tuple[str, str], str] = OrderedDict()

    def check(self, text: str, policy: ValidationPolicy | None) -> tuple[Document | None, str]:
        """The parsed document and "" when ``text`` parses and validates under ``policy``
        (parse only when None); else None and the first error."""
        doc = self._docs.get(text)
        if doc is None:
            try:
                doc = parse(text)
            except DSLParseError as exc:
                return None, str(exc)
            self._docs[text] = doc
            if len(self._docs) > self.max_docs:
                self._docs.popitem(last=False)
        else:
            self._docs.move_to_end(text)
        if policy is None:
            return doc, ""
        # equal reprs mean equal policies; a policy spelled differently only recomputes
        vkey = (text, repr(policy))
        problem = self._verdicts.get(vkey)
        if problem is None:
            diags = validate(doc, policy)
            errors = [d for d in diags if d.severity.value == "error"] if has_errors(diags) else []
            problem = f"{errors[0].code}: {errors[0].message}" if errors else ""
            self._verdicts[vkey] = problem
            if len(self._verdicts) > self.max_verdicts:
                self._verdicts.popitem(last=False)
        else:
            self._verdicts.move_to_end(vkey)
        return (None, problem) if problem else (doc, "")
