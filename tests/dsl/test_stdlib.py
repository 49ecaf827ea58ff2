"""The standard library shipped as data: its entries are well formed and references to
them resolve in the validator."""

from __future__ import annotations

import pytest

from agentic_llm.dsl.stdlib import is_standard_library_ref, standard_library
from agentic_llm.errors import ErrorCode
from tests.dsl.helpers import block, error_codes

LIBSPEC_PATHS = {
    "/lib/dslgraph/generate", "/lib/reasoning/try_catch", "/lib/reasoning/hypothesize_and_verify",
    "/lib/reasoning/stepwise_assert", "/lib/reasoning/generate_text", "/lib/memory/kg/query_subgraph",
    "/lib/memory/vector/recall", "/lib/conversation/meeting", "/lib/tool/list_available",
    "/lib/human/clarify_intent", "/lib/utils/noop", "/lib/math/add",
}


def test_entries_are_well_formed() -> None:
    entries = standard_library()
    paths = [e.path for e in entries]
    assert len(paths) == len(set(paths)) >= 30
    assert set(paths) >= LIBSPEC_PATHS
    for e in entries:
        assert e.path.startswith("/lib/") and "@" not in e.path
        assert e.stability in ("stable", "experimental")
        assert e.version.isdigit()
        e.parsed_signature()  # raises on a malformed signature
    try_catch = next(e for e in entries if e.path == "/lib/reasoning/try_catch")
    sig = try_catch.parsed_signature()
    assert sig.input_names == ("try_block", "catch_block") and sig.output_names == ("success",)


def test_versioned_and_bare_refs() -> None:
    assert is_standard_library_ref("/lib/reasoning/try_catch")
    assert is_standard_library_ref("/lib/reasoning/try_catch@v1")
    assert not is_standard_library_ref("/lib/reasoning/try_catch@v2")
    assert not is_standard_library_ref("/lib/reasoning/nothing")


def _calling(target: str) -> str:
    return block(
        "/dynamic/c",
        f'graph_type: subgraph\nnodes:\n  - id: s\n    type: start\n    next: ["{target}"]',
    )


@pytest.mark.parametrize("target", ["/lib/reasoning/try_catch@v1", "/lib/memory/vector/recall",
                                    "/lib/math/add"])
def test_references_to_the_standard_library_resolve(target: str) -> None:
    assert error_codes(_calling(target)) == set()


@pytest.mark.parametrize("target", ["/lib/reasoning/try_catch@v2", "/lib/reasoning/nothing"])
def test_other_library_paths_stay_unresolved(target: str) -> None:
    assert error_codes(_calling(target)) == {ErrorCode.UNRESOLVED_REFERENCE}
