"""What every page shares: login, the header (app switcher, links), the current app, static files."""

import pytest

from tests.factories import AppFactory

PAGES = ["/", "/threads/", "/analytics/", "/settings/", "/runs/r1/", "/threads/1/"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_require_login(client, db, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_header_links_every_page_and_the_admin_only_for_staff(client, alice, acme_app):
    client.force_login(alice)
    body = client.get("/").content.decode()
    for link in ('href="/"', 'href="/threads/"', 'href="/analytics/"', 'href="/settings/"'):
        assert link in body
    assert "/admin/" not in body
    alice.is_staff = True
    alice.save()
    assert 'href="/admin/"' in client.get("/").content.decode()


def test_the_app_switcher_lists_the_users_apps_and_remembers_the_choice(client, alice, acme_app, globex_app):
    other = AppFactory(organization=acme_app.organization, name="Billing Bot", slug="billing")
    client.force_login(alice)
    body = client.get("/").content.decode()
    assert "Support Bot" in body and "Billing Bot" in body and "Sales Bot" not in body
    client.get(f"/?app={other.public_id}")
    assert f'value="{other.public_id}" selected' in client.get("/threads/").content.decode()


@pytest.mark.parametrize("path", ["/", "/threads/", "/analytics/", "/settings/"])
def test_another_organizations_app_is_a_404(client, alice, globex_app, path):
    client.force_login(alice)
    assert client.get(f"{path}?app={globex_app.public_id}").status_code == 404
    assert client.get(f"{path}?app=not-a-uuid").status_code == 404


def test_static_files_are_ours_and_the_favicon_is_found(client, db):
    assert client.get("/static/vendor/htmx-2.0.11/htmx.min.js").status_code == 200
    assert client.get("/static/js/observatory.js").status_code == 200
    assert client.get("/static/vendor/uplot-1.6.32/uPlot.iife.min.js").status_code == 200
    assert client.get("/static/js/analytics.js").status_code == 200
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon["Location"] == "/static/favicon.svg"


def test_no_page_loads_anything_from_another_host(client, alice, acme_app):
    client.force_login(alice)
    for path in ("/", "/threads/", "/analytics/", "/settings/"):
        body = client.get(path).content.decode()
        assert "https://" not in body.split("<main>")[0], path  # the head and header load only our own files
