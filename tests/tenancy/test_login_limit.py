"""Login brute force is slowed: a user name that fails too often from one address is locked out
there, on the site's login and the admin's (django-axes, counted in the database)."""

import pytest
from django.test import Client

LIMIT = 3


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def attempt(client: Client, username: str, password: str, *, path: str = "/login/", ip: str = "203.0.113.7"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_too_many_failures_lock_the_name_from_that_address(client, alice, charlie):
    for _ in range(LIMIT - 1):
        assert attempt(client, "alice", "wrong").status_code == 200  # the form again, with its error
    assert attempt(client, "alice", "wrong").status_code == 429
    assert attempt(client, "alice", "password").status_code == 429  # even with the right password
    assert "_auth_user_id" not in client.session
    # Not a lock of the account for everyone: alice from elsewhere, and others from here, log in.
    assert attempt(Client(), "alice", "password", ip="198.51.100.9").status_code == 302
    assert attempt(Client(), "charlie", "password").status_code == 302


def test_a_success_starts_the_count_again(client, alice):
    for _ in range(LIMIT - 1):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "password").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        assert attempt(client, "alice", "wrong").status_code == 200


def test_the_admin_login_counts_too(client, alice):
    for _ in range(LIMIT):
        attempt(client, "alice", "wrong", path="/admin/login/")
    assert attempt(client, "alice", "password").status_code == 429


def test_behind_the_proxy_the_address_is_the_one_it_appended(client, alice, charlie, settings):
    settings.BEHIND_TLS_PROXY = True

    def forwarded(username, password, chain):
        return client.post("/login/", {"username": username, "password": password}, HTTP_X_FORWARDED_FOR=chain)

    for n in range(LIMIT):  # the attacker forges a different first address each time: no use
        forwarded("alice", "wrong", f"10.0.0.{n}, 203.0.113.7")
    assert forwarded("alice", "password", "10.9.9.9, 203.0.113.7").status_code == 429
    assert forwarded("alice", "password", "198.51.100.9").status_code == 302
