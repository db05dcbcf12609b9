"""Every URL pattern, walked as an anonymous visitor, as a member of another organization and as a
member who is not an owner: the right refusal, and nothing of Acme's in any answer.

ROUTES classifies every pattern the URLconf has (the admin's apart); a new route fails
`test_every_route_is_classified` until it is added here with who may reach it.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.tenancy.models import ApiKey
from apps.threads.models import Thread
from tests.conftest import key_client
from tests.helpers import ingest

SECRET = "ACME-SECRET-7f3a"  # in Acme's runs, messages and names: no one else may ever see it

# pattern -> (kind, path with Acme's ids as {run}, {thread}, {app}, {key}; the method that acts).
# Kinds: public (anyone), ingest (an API key), api (a key or a session), page (a session),
# owner (a session of an owner of the object's organization).
ROUTES = {
    "favicon.ico": ("public", "/favicon.ico", "get"),
    "login/": ("public", "/login/", "get"),
    "logout/": ("public", "/logout/", "post"),
    "healthz": ("public", "/healthz", "get"),
    "metrics": ("public", "/metrics", "get"),
    "api/report": ("ingest", "/api/report", "post"),
    "api/report/": ("ingest", "/api/report/", "post"),
    "v1/traces": ("ingest", "/v1/traces", "post"),
    "api/public/otel/v1/traces": ("ingest", "/api/public/otel/v1/traces", "post"),
    "api/public/scores": ("ingest", "/api/public/scores", "post"),
    "api/public/ingestion": ("ingest", "/api/public/ingestion", "post"),
    "v1/runs/ingest": ("ingest", "/v1/runs/ingest", "post"),
    "v1/runs/<str:run_id>/score": ("ingest", "/v1/runs/{run}/score", "patch"),
    "api/^apps/$": ("api", "/api/apps/", "get"),
    "api/^apps/(?P<app_id>[^/.]+)/$": ("api", "/api/apps/{app}/", "get"),
    "api/run/": ("api", "/api/run/?app_id={app}", "get"),
    "api/run/compare": ("api", "/api/run/compare", "post"),
    "api/run/compare/": ("api", "/api/run/compare/", "post"),
    "api/run/<str:run_id>/": ("api", "/api/run/{run}/?app_id={app}", "get"),
    "api/run/<str:run_id>": ("api", "/api/run/{run}?app_id={app}", "get"),
    "api/datasets/export": ("api", "/api/datasets/export?app_id={app}", "get"),
    "api/datasets/export/": ("api", "/api/datasets/export/?app_id={app}", "get"),
    **{
        f"api/analytics/{name}{slash}": ("api", f"/api/analytics/{name}{slash}?app_id={{app}}", "get")
        for name in ("usage", "models", "agents", "errors")
        for slash in ("", "/")
    },
    "api/^threads/$": ("api", "/api/threads/?app_id={app}", "get"),
    "api/^threads/(?P<pk>[^/.]+)/$": ("api", "/api/threads/{thread}/?app_id={app}", "get"),
    "api/schema/": ("public", "/api/schema/", "get"),  # the API's documentation: no one's data
    "api/docs/": ("public", "/api/docs/", "get"),
    "": ("page", "/?app={app}", "get"),
    "runs/<str:run_id>/": ("page", "/runs/{run}/?app={app}", "get"),
    "runs/<str:run_id>/span/<str:span_id>/": ("page", "/runs/{run}/span/{run}/?app={app}", "get"),
    "runs/<str:run_id>/subtree/<str:span_id>/": ("page", "/runs/{run}/subtree/{run}/?app={app}", "get"),
    "runs/<str:run_id>/save/": ("page", "/runs/{run}/save/?app={app}", "post"),
    "runs/<str:run_id>/compare/": ("page", "/runs/{run}/compare/?app={app}&with={run}", "get"),
    "threads/": ("page", "/threads/?app={app}", "get"),
    "analytics/": ("page", "/analytics/?app={app}", "get"),
    "threads/<int:pk>/": ("page", "/threads/{thread}/?app={app}", "get"),
    "settings/": ("page", "/settings/", "get"),
    "settings/apps/<uuid:app_id>/": ("owner", "/settings/apps/{app}/", "post"),
    "settings/keys/": ("owner", "/settings/keys/?app={app}", "post"),
    "settings/keys/<int:pk>/revoke/": ("owner", "/settings/keys/{key}/revoke/", "post"),
    "settings/members/": ("owner", "/settings/members/?app={app}", "post"),
}
PUBLIC = {route for route, (kind, _, _) in ROUTES.items() if kind == "public"}


def patterns(resolvers=None, prefix=""):
    for entry in get_resolver().url_patterns if resolvers is None else resolvers:
        if isinstance(entry, URLResolver):
            if not str(entry.pattern).startswith("admin/"):  # the admin: test_the_admin_is_staff_only
                yield from patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def test_every_route_is_classified():
    assert sorted(patterns()) == sorted(ROUTES)


@pytest.fixture
def acme_data(acme_app, alice):
    """Acme's trace, conversation, saved run and API key, each carrying SECRET."""
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "r-acme", "timestamp": "2026-05-29T08:00:00Z", "input": SECRET,
         "metadata": {"agent": SECRET, "user_id": "u-acme"}},
        {"name": "llm_call", "run_id": "l-acme", "parent_run_id": "r-acme", "timestamp": "2026-05-29T08:00:01Z",
         "model": "m", "total_tokens": 5, "output": SECRET},
        {"name": "chat", "role": "user", "content": SECRET, "thread_id": "t-acme", "run_id": "r-acme",
         "timestamp": "2026-05-29T08:00:02Z"},
        {"name": "agent_end", "run_id": "r-acme", "timestamp": "2026-05-29T08:00:03Z", "output": SECRET},
        {"name": "saved", "run_id": "r-acme", "timestamp": "2026-05-29T08:00:04Z"},
    )  # fmt: skip
    key, _ = ApiKey.issue(app=acme_app, name=SECRET)
    ids = {"run": "r-acme", "thread": Thread.objects.get().pk, "app": acme_app.public_id, "key": key.pk}
    return {route: (kind, path.format(**ids), method) for route, (kind, path, method) in ROUTES.items()}


def call(client, method: str, path: str, app=None):
    """One request; a form POST names Acme's app, as the Settings page's forms do."""
    if method == "patch":
        return client.patch(path, data=b"{}", content_type="application/json")
    if method == "post":
        return client.post(path, data={"app": str(app.public_id)} if app else {})
    return client.get(path)


def test_an_anonymous_visitor_is_sent_to_log_in_or_refused(client, acme_data, acme_app):
    for route, (kind, path, method) in acme_data.items():
        response = call(client, method, path, acme_app)
        assert SECRET not in response.content.decode(errors="replace"), route
        if kind == "public":
            assert response.status_code in (200, 301, 302), route
        elif kind in ("ingest", "api"):
            assert response.status_code == 401, (route, response.status_code)
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/"), route


def test_another_organizations_member_finds_nothing_of_acmes(acme_data, acme_app, bob, globex_app):
    session = Client()
    key = key_client(ApiKey.issue(app=globex_app, name="globex")[1])
    for route, (kind, path, method) in acme_data.items():
        for who, visitor in (("session", session), ("key", key)):
            if kind in ("page", "owner") and who == "key" or kind == "ingest" and who == "session":
                continue
            session.force_login(bob)  # again: /logout/ is one of the routes
            response = call(visitor, method, path, acme_app)
            body = response.content.decode(errors="replace")
            assert SECRET not in body, (route, who, response.status_code)
            assert response.status_code < 500, (route, who, body[:300])
            if kind in ("api", "page", "owner") and "{" not in ROUTES[route][1] and "app=" not in path:
                continue  # no Acme object named: the visitor's own (empty) data
            if kind in ("api", "page", "owner"):
                assert response.status_code in (403, 404), (route, who, response.status_code)


def test_a_member_who_is_not_an_owner_cannot_change_the_organization(acme_data, acme_app, charlie):
    session = Client()
    session.force_login(charlie)
    for route, (kind, path, method) in acme_data.items():
        if kind == "owner":
            assert call(session, method, path, acme_app).status_code == 403, route
    assert ApiKey.objects.filter(name=SECRET, revoked_at__isnull=True).exists()


def test_the_admin_is_staff_only(client, acme_data, bob):
    for path in ("/admin/", "/admin/tracing/run/", "/admin/tracing/savedrun/", "/admin/tenancy/apikey/"):
        assert client.get(path).status_code == 302, path
        client.force_login(bob)  # a user, not staff
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path
        assert SECRET not in response.content.decode()
        client.logout()


def test_acmes_owner_sees_the_secret_where_the_others_do_not(acme_data, alice, acme_key):
    # The control: the tests above look for SECRET where it would show if the scoping failed.
    session = Client()
    session.force_login(alice)
    for route in ("runs/<str:run_id>/", "threads/<int:pk>/", "settings/"):
        assert SECRET in session.get(acme_data[route][1]).content.decode(), route
    for route in ("api/run/<str:run_id>/", "api/^threads/(?P<pk>[^/.]+)/$"):
        assert SECRET in key_client(acme_key).get(acme_data[route][1]).content.decode(), route


def test_every_form_and_session_write_needs_the_csrf_token(acme_data, acme_app, alice):
    """Every route that changes something with a session (pages' forms, the API used from a page,
    logging out) refuses a request without the CSRF token, even from the owner; the key-only
    ingestion routes take no cookies and need none."""
    session = Client(enforce_csrf_checks=True)
    writes = {route: entry for route, entry in acme_data.items() if entry[2] != "get" and entry[0] != "ingest"}
    assert len(writes) == 8  # logout, compare (twice), save, and the Settings page's four forms
    for route, (_, path, method) in writes.items():
        session.force_login(alice)
        response = call(session, method, path, acme_app)
        assert response.status_code == 403, (route, response.status_code)
        assert "CSRF" in response.content.decode(errors="replace"), route
    assert ApiKey.objects.filter(name=SECRET, revoked_at__isnull=True).exists()  # nothing was revoked
