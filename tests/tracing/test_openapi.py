from io import StringIO

from django.core.management import call_command


def test_the_schema_documents_report_and_runs(client, db):
    schema = client.get("/api/schema/?format=json").json()
    assert {"/api/report", "/api/run/", "/api/run/{run_id}/", "/api/run/compare"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/api/run/"]["get"]["parameters"]}
    assert {"status", "min_cost", "tags", "from", "to", "search", "ordering", "limit", "cursor", "app_id"} <= parameters
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_the_schema_generates_without_warnings(db):
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO())


def test_the_docs_page_is_served_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in response.content
