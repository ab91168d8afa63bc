"""The OpenAPI document of /api/v1 (being written)."""


def openapi_document() -> dict:
    return {"openapi": "3.1.0", "info": {"title": "PerfBudget API", "version": "1"}, "paths": {}}
