from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.utils import timezone
from redis.exceptions import RedisError

from apps.tenancy.models import ApiKey, App, Organization, hash_key
from tests.conftest import key_client


def test_it_stores_only_hash_and_prefix(acme_app):
    key, raw_key = ApiKey.issue(app=acme_app)
    stored = ApiKey.objects.values().get(pk=key.pk)
    assert raw_key not in {str(value) for value in stored.values()}
    assert stored["key_hash"] == hash_key(raw_key) != raw_key
    assert raw_key.startswith(stored["prefix"]) and len(stored["prefix"]) == 12
    assert stored["organization_id"] == acme_app.organization_id


def test_it_issues_distinct_keys(acme_app):
    assert ApiKey.issue(app=acme_app)[1] != ApiKey.issue(app=acme_app)[1]


def test_it_finds_a_key_only_with_the_full_secret(acme_app):
    key, raw_key = ApiKey.issue(app=acme_app)
    assert ApiKey.objects.for_raw_key(raw_key) == key
    assert ApiKey.objects.for_raw_key(raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")) is None
    assert ApiKey.objects.for_raw_key(key.prefix) is None
    assert ApiKey.objects.for_raw_key("") is None


def test_it_accepts_a_valid_key(acme_client, acme_app):
    response = acme_client.get("/api/apps/")
    assert response.status_code == 200
    assert [app["app_id"] for app in response.json()] == [str(acme_app.public_id)]


@pytest.mark.parametrize(
    "header",
    ["Bearer obs_00000000_unknownkeyunknownkeyunknownkey", "Bearer ", "Bearer not-a-key", None],
    ids=["unknown", "empty", "malformed", "missing"],
)
def test_it_refuses_unknown_or_missing_keys(client, header, db):
    kwargs = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/api/apps/", **kwargs)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]


def test_it_rejects_revoked_key(acme_app):
    key, raw_key = ApiKey.issue(app=acme_app)
    key.revoke()
    response = key_client(raw_key).get("/api/apps/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_it_updates_last_used_at_at_most_once_a_minute(acme_app, django_assert_num_queries):
    key, raw_key = ApiKey.issue(app=acme_app)
    client = key_client(raw_key)
    client.get("/api/apps/")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    # Second request within the minute: key lookup + the apps query, no UPDATE.
    with django_assert_num_queries(2):
        client.get("/api/apps/")
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    client.get("/api/apps/")
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


@pytest.fixture
def key_cache(settings):
    settings.OBSERVATORY_API_KEY_CACHE_SECONDS = 60


def test_a_cached_key_is_not_looked_up_again(acme_app, key_cache, django_assert_num_queries):
    key, raw_key = ApiKey.issue(app=acme_app)
    client = key_client(raw_key)
    client.get("/api/apps/")
    with django_assert_num_queries(1):  # the apps query only
        assert client.get("/api/apps/").status_code == 200


def test_the_cache_still_records_use_once_a_minute(acme_app, key_cache):
    key, raw_key = ApiKey.issue(app=acme_app)
    client = key_client(raw_key)
    client.get("/api/apps/")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    client.get("/api/apps/")  # the cached key says just used: no write
    assert ApiKey.objects.get(pk=key.pk).last_used_at < first
    with mock.patch("apps.tenancy.models.timezone.now", return_value=timezone.now() + timedelta(minutes=2)):
        client.get("/api/apps/")
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


@pytest.mark.parametrize(
    "how",
    [
        "revoke",
        "admin revoke",
        "delete",
        "queryset delete",
        "admin delete",
        "app deleted",
        "apps deleted",
        "admin deletes the app",
        "organization deleted",
        "organizations deleted",
    ],
)
def test_a_revoked_or_deleted_key_stops_working_at_once(acme_app, key_cache, admin_client, how):
    key, raw_key = ApiKey.issue(app=acme_app)
    other_key, other_raw_key = ApiKey.issue(app=App.objects.create(organization=acme_app.organization, name="B"))
    client = key_client(raw_key)
    assert client.get("/api/apps/").status_code == 200  # now cached
    selected = {"post": "yes", "_selected_action": [key.pk]}
    if how == "revoke":
        key.revoke()
    elif how == "admin revoke":
        admin_client.post("/admin/tenancy/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    elif how == "delete":
        key.delete()
    elif how == "queryset delete":
        ApiKey.objects.filter(pk=key.pk).delete()
    elif how == "admin delete":
        admin_client.post("/admin/tenancy/apikey/", {"action": "delete_selected", **selected})
    elif how == "app deleted":
        acme_app.delete()
    elif how == "apps deleted":
        App.objects.filter(pk=acme_app.pk).delete()
    elif how == "admin deletes the app":
        admin_client.post(
            "/admin/tenancy/app/", {"action": "delete_selected", "post": "yes", "_selected_action": [acme_app.pk]}
        )
    elif how == "organization deleted":
        acme_app.organization.delete()
    else:
        Organization.objects.filter(pk=acme_app.organization_id).delete()
    assert not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).exists()
    assert client.get("/api/apps/").status_code == 401
    other_alive = how not in {"organization deleted", "organizations deleted"}
    assert (key_client(other_raw_key).get("/api/apps/").status_code == 200) is other_alive


def test_keys_are_not_dropped_from_the_cache_by_signals():
    from django.db.models.signals import post_delete, post_save

    assert not post_save.has_listeners(ApiKey)
    assert not post_delete.has_listeners(ApiKey)


def test_unknown_keys_are_not_cached(acme_app, key_cache):
    key, raw_key = ApiKey.issue(app=acme_app)
    key.delete()
    assert key_client(raw_key).get("/api/apps/").status_code == 401
    ApiKey.objects.create(app=acme_app, organization=acme_app.organization, prefix=key.prefix, key_hash=key.key_hash)
    assert key_client(raw_key).get("/api/apps/").status_code == 200


def test_without_redis_keys_are_looked_up_in_the_database(acme_app, key_cache):
    key, raw_key = ApiKey.issue(app=acme_app)
    down = RedisError("Connection refused")
    with mock.patch.object(cache, "get", side_effect=down), mock.patch.object(cache, "set", side_effect=down):
        assert key_client(raw_key).get("/api/apps/").status_code == 200
    with mock.patch.object(cache, "delete_many", side_effect=down):
        key.revoke()  # the entry would expire on its own
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
