"""Replay the requests real clients sent (tests/fixtures/clients/, recorded by record.sh) through HTTP."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "clients"
FIXTURE_KEY = "obs_FIXTUREKEY"
FIXTURE_APP_ID = "2b7c1a5e-0000-4000-8000-00000000a11c"  # the LLMonitor scenario's app id


def recording(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def replay(client, name: str) -> list:
    """Send every recorded request of `name` as it was sent, headers and key included (chunked bodies
    as a de-chunking server hands them over); the responses, in order."""
    responses = []
    for request in recording(name)["requests"]:
        body = base64.b64decode(request["body_b64"])
        extra = {"HTTP_AUTHORIZATION": request["authorization"]} if request["authorization"] else {}
        if request["content_encoding"]:
            extra["HTTP_CONTENT_ENCODING"] = request["content_encoding"]
        if "chunked" in request["headers"].get("transfer-encoding", ""):
            extra |= {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body),
                      "wsgi.input_terminated": True}  # fmt: skip
        path = request["path"] + (f"?{request['query']}" if request["query"] else "")
        responses.append(client.generic(request["method"], path, body, request["content_type"], **extra))
    return responses
