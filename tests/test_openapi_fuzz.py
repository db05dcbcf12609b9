"""Schema fuzzing (schemathesis): every operation of our own OpenAPI schema, called with a real key
and generated input (valid and not), answers as the schema documents — its status codes, content
types and bodies — and never with a 500.

In process (the WSGI application on the test's database), bounded per operation so that the whole
schema runs in CI in well under a minute. The ingestion routes (/api/report, /v1/traces, the
Langfuse and Lunary ones) are in the schema, so they are fuzzed too.
"""

import orjson
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as examples
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# What the responses must be. Not checked: that every schema-valid input is accepted and every
# other refused (schemathesis' positive and negative data checks): the API also takes forms the
# schema does not spell out (a date for a date-time filter) and refuses what it cannot express
# (a key's app, a cycle of parents), each with a 400 that names the field.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _schema():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(orjson.loads(OpenApiJsonRenderer().render(raw)))
    loaded.app = get_wsgi_application()
    return loaded


schema = _schema()


@pytest.fixture
def one_connection():
    """Keep the test's database connection across the WSGI requests (as Django's test client does):
    a request's end would otherwise close it, and the test's transaction with it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@examples(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, acme_key, one_connection):
    # identity: the WSGI client does not decompress what GZipMiddleware compresses for others
    headers = {"Authorization": f"Bearer {acme_key}", "Accept-Encoding": "identity"}
    case.call_and_validate(headers=headers, checks=CHECKS)


@pytest.mark.parametrize("path", ["/api/threads/0.5/", "/api/nothing-here", "/v1/nothing-here"])
def test_api_paths_no_route_matches_answer_the_api_error(acme_client, path):
    # Found by the fuzzing above: a thread id that is not a number fell through to Django's HTML page.
    response = acme_client.get(path)
    assert (response.status_code, response["Content-Type"], response.json()) == (
        404,
        "application/json",
        {"error": "Not found."},
    )


def test_other_paths_no_route_matches_answer_the_page(client, db):
    response = client.get("/nothing-here")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
