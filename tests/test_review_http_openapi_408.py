"""Every operation that reads a request body can answer 408 (the body did not arrive
within body_timeout_s, added today), so its documented responses must list 408: a
client generated from the spec, or a schema checker, meets an undocumented status."""

from __future__ import annotations

from engram.api.openapi import openapi_document


def test_every_operation_with_a_body_documents_408():
    doc = openapi_document("test")
    missing = [f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method, op in ops.items()
               if "requestBody" in op and "408" not in op["responses"]]
    assert missing == []
    assert doc["paths"]["/api/v1/memories/remember"]["post"]["responses"]["408"]["content"]["application/json"]["schema"]
