"""Tenant scoping of store namespaces, shared by the knowledge admin API and the AGA hook."""

from __future__ import annotations

import pytest

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.tenancy import scope_rows, scoped_namespace, split_namespace


def test_a_tenant_namespace_is_prefixed_and_reads_back() -> None:
    assert scoped_namespace("acme", "docs") == "acme/docs"
    assert scoped_namespace("", "docs") == "docs"
    assert split_namespace("acme", "acme/docs") == "docs"
    assert split_namespace("acme", "globex/docs") is None
    assert split_namespace("", "docs") == "docs"
    assert split_namespace("", "acme/docs") is None  # another tenant's, not the empty one's


@pytest.mark.parametrize(("tenant", "namespace", "field"), [
    ("acme", "", "namespace"), ("acme", "globex/docs", "namespace"), ("a/b", "docs", "tenant")])
def test_names_that_would_reach_another_tenant_are_refused(tenant: str, namespace: str,
                                                           field: str) -> None:
    with pytest.raises(AgenticError) as exc:
        scoped_namespace(tenant, namespace)
    assert exc.value.code is ErrorCode.INVALID_REQUEST and exc.value.details["field"] == field


def test_each_row_reads_its_own_tenants_namespaces() -> None:
    rows = [("docs", "/lib/grant"), (), ("globex/secret", "faq")]
    assert scope_rows(rows, ("acme", "", "acme"), "default") == [
        ("acme/docs",), ("default",), ("acme/faq",)]
    # a row without a tenant entry is the empty tenant's
    assert scope_rows([("docs",)], (), "default") == [("docs",)]
