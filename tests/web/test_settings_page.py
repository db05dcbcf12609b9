"""The Settings page: apps (owners edit), API keys (create once-shown, revoke), members (owners add)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.tenancy.models import ApiKey, App, Membership
from tests.factories import AppFactory, UserFactory
from tests.helpers import report

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


@pytest.fixture
def owner(client, alice, acme_app):
    client.force_login(alice)
    return client


@pytest.fixture
def member(client, charlie, acme_app):
    client.force_login(charlie)
    return client


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_settings_require_login(client, db):
    response = client.get("/settings/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_posts_only(owner, acme_app):
    assert owner.get(f"/settings/apps/{acme_app.public_id}/").status_code == 405
    assert owner.get("/settings/keys/").status_code == 405


# --- the page -------------------------------------------------------------------------------------


def test_the_page_lists_apps_keys_and_members(owner, alice, charlie, acme_app, acme_key, globex_app):
    response = owner.get("/settings/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Support Bot" in html and str(acme_app.public_id) in html and "Sales Bot" not in html
    assert f'action="/settings/apps/{acme_app.public_id}/"' in html  # alice owns Acme
    key = ApiKey.objects.get(app=acme_app)
    assert f"<code>{key.prefix}…</code>" in html and "acme test" in html and "never" in html
    assert acme_key not in html and acme_key[12:] not in html  # never the secret
    assert 'action="/settings/keys/"' in html and f'action="/settings/keys/{key.pk}/revoke/"' in html
    members = html.split('id="members-title"')[1]
    assert re.findall(r"<tr><td>(\w+)", members) == ["alice", "charlie"]
    assert ">Owner<" in members and ">Member<" in members
    assert 'action="/settings/members/"' in html
    assert 'class="app-switch" method="get" action="/settings/"' in html


def test_apps_of_every_organization_of_the_user(client, alice, acme_app, globex, globex_app):
    Membership.objects.create(organization=globex, user=alice, role=Membership.Role.MEMBER)
    client.force_login(alice)
    html = client.get("/settings/").content.decode()
    assert "Support Bot" in html and "Sales Bot" in html
    # Owner of Acme (a form), plain member of Globex (read-only).
    assert f'action="/settings/apps/{acme_app.public_id}/"' in html
    assert f'action="/settings/apps/{globex_app.public_id}/"' not in html
    assert "only owners of Globex change it" in html


def test_a_member_sees_everything_read_only(member, alice, acme_app, acme_key):
    html = member.get("/settings/").content.decode()
    assert "Support Bot" in html and ApiKey.objects.get(app=acme_app).prefix in html and "alice" in html
    assert "<form" not in html.split("<main>")[1]  # no forms at all
    assert "Only owners of Acme create and revoke keys" in html


def test_untrusted_names_render_escaped(owner, acme_app, alice):
    acme_app.name = XSS
    acme_app.save()
    ApiKey.issue(app=acme_app, name=XSS)
    html = owner.get("/settings/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_settings_query_count_is_pinned(owner, acme_app, acme, charlie, django_assert_num_queries):
    for i in range(5):
        ApiKey.issue(app=AppFactory(organization=acme, name=f"App {i}"), name=f"k{i}")
    for i in range(5):
        Membership.objects.create(organization=acme, user=UserFactory(username=f"m{i}"))
    owner.get(f"/settings/?app={acme_app.public_id}")
    # session, user, the user's apps, the organizations they own, keys, members
    with django_assert_num_queries(6):
        assert owner.get("/settings/").status_code == 200


# --- apps -----------------------------------------------------------------------------------------


def test_an_owner_edits_name_and_retention(owner, acme_app):
    response = owner.post(f"/settings/apps/{acme_app.public_id}/", {"name": " Helpdesk ", "retention_days": "30"})
    assert response.status_code == 302 and response["Location"] == "/settings/"
    acme_app.refresh_from_db()
    assert (acme_app.name, acme_app.retention_days) == ("Helpdesk", 30)
    assert "Saved Helpdesk." in owner.get("/settings/").content.decode()
    for forever in ("", "0"):
        owner.post(f"/settings/apps/{acme_app.public_id}/", {"name": "Helpdesk", "retention_days": forever})
        acme_app.refresh_from_db()
        assert acme_app.retention_days is None


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "", "retention_days": "3"}, "Name: This field is required."),
        ({"name": "   ", "retention_days": "3"}, "Name: This field is required."),
        ({"name": "x", "retention_days": "-1"}, "Retention (days): Ensure this value is greater than or equal to 0."),
        ({"name": "x", "retention_days": "soon"}, "Retention (days): Enter a whole number."),
        (
            {"name": "x", "retention_days": "99999999999"},
            "Retention (days): Ensure this value is less than or equal to 36500.",
        ),
        ({"name": "x" * 201, "retention_days": ""}, "Name: Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_invalid_app_settings_are_shown_and_nothing_changes(owner, acme_app, data, message):
    response = owner.post(f"/settings/apps/{acme_app.public_id}/", data)
    assert response.status_code == 400
    assert f'<p class="form-error">{message}</p>' in response.content.decode()
    acme_app.refresh_from_db()
    assert acme_app.name == "Support Bot"


def test_a_member_cannot_edit_an_app(member, acme_app):
    assert (
        member.post(f"/settings/apps/{acme_app.public_id}/", {"name": "Mine", "retention_days": "1"}).status_code == 403
    )
    acme_app.refresh_from_db()
    assert acme_app.name == "Support Bot"


def test_another_organizations_app_is_a_404(owner, globex_app):
    assert owner.post(f"/settings/apps/{globex_app.public_id}/", {"name": "Mine"}).status_code == 404
    assert owner.get(f"/settings/?app={globex_app.public_id}").status_code == 404
    globex_app.refresh_from_db()
    assert globex_app.name == "Sales Bot"


# --- keys -----------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_works(owner, acme_app):
    response = owner.post("/settings/keys/", {"app": str(acme_app.public_id), "name": "production"})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = re.search(r'<code id="new-key-value">(obs_[0-9a-f]{8}_[\w-]{43})</code>', html).group(1)
    assert 'data-copy="#new-key-value"' in html and "shown this once and never again" in html
    key = ApiKey.objects.get(name="production")
    assert key.app == acme_app and raw.startswith(key.prefix)
    # It works, and it is never shown again.
    report(Client(), {"name": "llm_call", "run_id": "k1"}, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert raw not in owner.get("/settings/").content.decode()
    assert raw[12:] not in str(dict(owner.session))


@pytest.mark.parametrize(
    "data,status",
    [({"name": ""}, 400), ({"name": "   "}, 400), ({"name": "x" * 201}, 400)],
)
def test_an_invalid_key_name_is_shown(owner, acme_app, data, status):
    response = owner.post("/settings/keys/", {"app": str(acme_app.public_id), **data})
    assert response.status_code == status and 'class="form-error"' in response.content.decode()
    assert not ApiKey.objects.filter(app=acme_app).exists()


def test_a_key_for_another_organizations_app_is_a_404(owner, globex_app):
    for app in (str(globex_app.public_id), "not-a-uuid", ""):
        assert owner.post("/settings/keys/", {"app": app, "name": "x"}).status_code == 404
    assert not ApiKey.objects.exists()


def test_a_member_cannot_create_a_key(member, acme_app):
    assert member.post("/settings/keys/", {"app": str(acme_app.public_id), "name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_a_revoked_key_is_refused_by_the_api_at_once(owner, acme_app, acme_key, settings):
    settings.OBSERVATORY_API_KEY_CACHE_SECONDS = 60  # even with the key's lookup cached
    api = Client()
    report(api, {"name": "llm_call", "run_id": "before"}, HTTP_AUTHORIZATION=f"Bearer {acme_key}")
    key = ApiKey.objects.get(app=acme_app)
    response = owner.post(f"/settings/keys/{key.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == f"/settings/?app={acme_app.public_id}"
    key.refresh_from_db()
    assert key.revoked_at is not None
    report(api, {"name": "llm_call", "run_id": "after"}, HTTP_AUTHORIZATION=f"Bearer {acme_key}", expect=401)
    html = owner.get("/settings/").content.decode()
    assert f"Revoked {key.prefix}…" in html and '<span class="status revoked">revoked</span>' in html
    assert f'action="/settings/keys/{key.pk}/revoke/"' not in html  # nothing left to revoke


def test_a_member_cannot_revoke_and_another_organizations_key_is_a_404(
    member, client, bob, acme_app, acme_key, globex_key
):
    key = ApiKey.objects.get(app=acme_app)
    assert member.post(f"/settings/keys/{key.pk}/revoke/").status_code == 403
    client.force_login(bob)
    assert client.post(f"/settings/keys/{key.pk}/revoke/").status_code == 404
    assert client.post("/settings/keys/999999/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


# --- members --------------------------------------------------------------------------------------


def test_an_owner_adds_an_existing_user(owner, acme, acme_app):
    dave = UserFactory(username="dave")
    response = owner.post("/settings/members/", {"app": str(acme_app.public_id), "username": "dave", "role": "owner"})
    assert response.status_code == 302
    assert Membership.objects.get(organization=acme, user=dave).role == "owner"
    assert "Added dave to Acme as owner." in owner.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    "username,role,message",
    [
        ("nobody", "member", "There is no user “nobody”. Only existing accounts can be added"),
        ("charlie", "owner", "charlie is already a member of Acme (member)."),
        ("", "member", "This field is required."),
        ("dave", "admin", "Select a valid choice. admin is not one of the available choices."),
    ],
)
def test_adding_a_member_refuses_with_a_message(owner, charlie, acme, acme_app, username, role, message):
    UserFactory(username="dave")
    response = owner.post("/settings/members/", {"app": str(acme_app.public_id), "username": username, "role": role})
    assert response.status_code == 400 and message in response.content.decode()
    assert Membership.objects.get(organization=acme, user=charlie).role == "member"
    assert not get_user("nobody")


def get_user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username=username).exists()


def test_a_member_cannot_add_members_and_other_organizations_are_a_404(member, acme_app, globex_app):
    UserFactory(username="dave")
    assert member.post("/settings/members/", {"app": str(acme_app.public_id), "username": "dave"}).status_code == 403
    assert member.post("/settings/members/", {"app": str(globex_app.public_id), "username": "dave"}).status_code == 404
    assert not Membership.objects.filter(user__username="dave").exists()


# --- CSRF -----------------------------------------------------------------------------------------


def test_every_post_needs_csrf(alice, acme_app, acme_key):
    client = csrf_client(alice)
    key = ApiKey.objects.get(app=acme_app)
    UserFactory(username="dave")
    posts = [
        (f"/settings/apps/{acme_app.public_id}/", {"name": "x"}),
        ("/settings/keys/", {"app": str(acme_app.public_id), "name": "x"}),
        (f"/settings/keys/{key.pk}/revoke/", {}),
        ("/settings/members/", {"app": str(acme_app.public_id), "username": "dave"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403
    assert App.objects.get(pk=acme_app.pk).name == "Support Bot" and ApiKey.objects.count() == 1
    # With the page's token they go through.
    html = client.get("/settings/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(
        "/settings/keys/", {"app": str(acme_app.public_id), "name": "x", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 201
