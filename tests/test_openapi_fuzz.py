"""Schema fuzzing (schemathesis): every operation of our own OpenAPI schema, called with a real key
and generated input (valid and not), answers as the schema documents — its status codes, content
types and bodies — and never with a 500.

Over HTTP against a live server (pytest-django's, on the test's database), bounded per operation
so that the whole schema runs in CI in about a minute. The ingestion routes (/api/report,
/v1/traces, the Langfuse and Lunary ones) are in the schema, so they are fuzzed too.
Derandomized, so that CI sends the same requests every run and never turns red on a new draw.
Random draws explore further: without `derandomize` one found the analytics 500 that
tests/analytics/test_api.py now pins, and the schemathesis CLI goes further still
(docs/ARCHITECTURE.md, "Tests that search for failures").
"""

import orjson
import pytest
import schemathesis
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
    return schemathesis.openapi.from_dict(orjson.loads(OpenApiJsonRenderer().render(raw)))


schema = _schema()


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@examples(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, live_server, acme_key):
    headers = {"Authorization": f"Bearer {acme_key}"}
    case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS)


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
