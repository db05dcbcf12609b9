import pytest


@pytest.mark.parametrize("path", ["/"])
def test_pages_require_login(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_home_lists_only_the_users_apps(client, alice, acme_app, globex_app, django_assert_num_queries):
    client.force_login(alice)
    # session, user, apps with their organizations
    with django_assert_num_queries(3):
        response = client.get("/")
    assert response.status_code == 200
    assert b"Support Bot" in response.content
    assert b"Sales Bot" not in response.content
    assert str(acme_app.public_id).encode() in response.content


def test_login_and_logout(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "password"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_with_a_wrong_password_is_refused(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content


def test_healthz(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
