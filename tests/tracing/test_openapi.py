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


def schema(client) -> dict:
    return client.get("/api/schema/?format=json").json()


def test_json_bodies_are_the_only_ones_advertised(client, db):
    paths = schema(client)["paths"]
    for path in ("/api/report", "/api/run/compare"):
        assert list(paths[path]["post"]["requestBody"]["content"]) == ["application/json"], path


def test_the_cost_range_covers_the_largest_cost_a_run_can_have(client, db):
    components = schema(client)["components"]["schemas"]
    largest = 2 * (2**53 - 1) * 999999.99999999 / 1000  # every token of both kinds at the top price
    for name, field in [("Run", "cost"), ("TraceNode", "subtree_cost"), ("Thread", "total_cost")]:
        assert components[name]["properties"][field]["maximum"] > largest, (name, field)


def test_the_error_responses_are_listed(client, db):
    paths = schema(client)["paths"]
    for path, method, statuses in [
        ("/api/run/", "get", {"400", "401", "404"}),
        ("/api/run/{run_id}/", "get", {"400", "401", "404"}),
        ("/api/run/compare", "post", {"400", "401", "404"}),
        ("/api/threads/", "get", {"400", "401", "404"}),
        ("/api/threads/{id}/", "get", {"400", "401", "404"}),
    ]:
        assert statuses <= set(paths[path][method]["responses"]), path
        assert "Error" in str(paths[path][method]["responses"]["400"]), path
