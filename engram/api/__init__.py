"""Engram's HTTP interface: an ASGI app (Starlette) served by hypercorn's trio worker.

Modules, one concern each: ``errors`` (the error envelope), ``schemas`` (request
validation and response shapes), ``auth`` (API keys), ``events`` (server-sent events),
``metrics`` (Prometheus), ``batching`` (concurrent recalls share one scan), ``openapi``
(the served OpenAPI document), ``http`` (routes), ``server`` (process lifetime, signals).
"""
