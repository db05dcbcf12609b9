from apps.tenancy.models import ApiKey, hash_key


def test_creating_a_key_in_the_admin_shows_it_once(admin_client, acme_app):
    response = admin_client.post("/admin/tenancy/apikey/add/", {"app": acme_app.pk, "name": "ci"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "shown only this once" in str(m)]
    assert len(shown) == 1
    raw_key = shown[0].rsplit(" ", 1)[1]
    key = ApiKey.objects.get(name="ci")
    assert key.key_hash == hash_key(raw_key)
    assert key.organization_id == acme_app.organization_id
    # The key is not shown again: not on the change page, not in the list.
    change_page = admin_client.get(f"/admin/tenancy/apikey/{key.pk}/change/")
    assert raw_key.encode() not in change_page.content
    assert raw_key.encode() not in admin_client.get("/admin/tenancy/apikey/").content


def test_the_admin_revokes_keys(admin_client, acme_app):
    key, _ = ApiKey.issue(app=acme_app)
    admin_client.post("/admin/tenancy/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_admin_lists_load(admin_client, acme_app):
    for model in ["organization", "app", "apikey"]:
        assert admin_client.get(f"/admin/tenancy/{model}/").status_code == 200


def test_the_admin_turns_legacy_ingestion_on(admin_client, acme_app):
    form = {"organization": acme_app.organization_id, "name": acme_app.name, "slug": acme_app.slug,
            "retention_days": "30", "legacy_ingestion": "on"}  # fmt: skip
    response = admin_client.post(f"/admin/tenancy/app/{acme_app.pk}/change/", form)
    assert response.status_code == 302, response.content
    acme_app.refresh_from_db()
    assert acme_app.legacy_ingestion
    listing = admin_client.get("/admin/tenancy/app/?legacy_ingestion__exact=1")
    assert acme_app.name.encode() in listing.content
