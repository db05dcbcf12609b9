def test_a_key_sees_only_its_organizations_apps(acme_client, acme_app, globex_app):
    response = acme_client.get("/api/apps/")
    assert [app["slug"] for app in response.json()] == ["support-bot"]


def test_a_key_cannot_read_another_organizations_app(acme_client, globex_app):
    assert acme_client.get(f"/api/apps/{globex_app.public_id}/").status_code == 404


def test_a_user_sees_only_their_organizations_apps(client, alice, bob, acme_app, globex_app):
    client.force_login(bob)
    response = client.get("/api/apps/")
    assert [app["slug"] for app in response.json()] == ["sales-bot"]
    assert client.get(f"/api/apps/{acme_app.public_id}/").status_code == 404


def test_a_malformed_app_id_is_a_404(acme_client, acme_app):
    assert acme_client.get("/api/apps/not-a-uuid/").status_code == 404
