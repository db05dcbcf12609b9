import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from observatory.env import env_bool, env_database, env_int, env_list


@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("Off", False), ("no", False), ("", False)])
def test_env_bool_reads_booleans(value, expected):
    assert env_bool("X", False, environ={"X": value}) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "tru"])
def test_env_bool_refuses_other_values(value):
    with pytest.raises(ImproperlyConfigured, match="X="):
        env_bool("X", False, environ={"X": value})


def test_env_int_refuses_non_integers_and_small_values():
    assert env_int("N", 5, environ={}) == 5
    assert env_int("N", 5, environ={"N": "7"}) == 7
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("N", 5, environ={"N": "seven"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 5, minimum=1, environ={"N": "0"})


def test_env_list_splits_on_commas():
    assert env_list("L", ["a"], environ={"L": "x.com, y.com,"}) == ["x.com", "y.com"]


def test_env_database_reads_postgres_and_sqlite():
    pg = env_database("DATABASE_URL", "", environ={"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"})
    assert pg["ENGINE"] == "django.db.backends.postgresql" and pg["NAME"] == "test" and pg["PORT"] == 5432
    lite = env_database("DATABASE_URL", "sqlite:////tmp/x.sqlite3", environ={})
    assert lite["ENGINE"] == "django.db.backends.sqlite3" and lite["NAME"] == "/tmp/x.sqlite3"


@pytest.mark.parametrize("url", ["not-a-url", "mysql://root@localhost/db", "postgres://x@h:notaport/db", "postgres://"])
def test_env_database_refuses_malformed_urls(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_database("DATABASE_URL", "", environ={"DATABASE_URL": url})


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DEBUG": "false"}, "SECRET_KEY is required"),
        ({"DEBUG": "perhaps", "SECRET_KEY": "x"}, "DEBUG='perhaps' is not a boolean"),
        ({"SECRET_KEY": "x", "DATABASE_URL": "oracle://db"}, "DATABASE_URL"),
    ],
)
def test_the_settings_module_refuses_bad_configuration(env, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG"],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "observatory.settings", **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, "inline"),  # the embedded default: no broker, events take effect in the request
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "worker"),  # production: workers apply them
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "OBSERVATORY_ASSEMBLY": "inline"}, "inline"),
    ],
)
def test_workers_apply_events_by_default_when_there_is_a_broker(env, expected):
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.OBSERVATORY_ASSEMBLY)"],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "observatory.settings", "SECRET_KEY": "x", **env},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == expected, result.stderr


def test_the_documented_production_environment_passes_the_deploy_checks():
    # README, "Production": the variables it exports (a database and broker are not contacted).
    env = {
        "DATABASE_URL": "postgres://observatory:secret@db:5432/observatory",
        "REDIS_URL": "redis://redis:6379/0",
        "SECRET_KEY": "k" * 20 + "-a-long-random-production-secret-" + "x" * 20,
        "ALLOWED_HOSTS": "obs.example.com",
        "BEHIND_TLS_PROXY": "true",
        "SECURE_COOKIES": "true",
        "SECURE_HSTS_SECONDS": "31536000",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_behind_tls_plain_http_is_redirected_but_not_the_probes(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True  # what BEHIND_TLS_PROXY=true sets
    response = client.get("/threads/")
    assert response.status_code == 301 and response["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_pages_carry_a_content_security_policy_of_our_own_files(client, db):
    policy = dict(
        directive.strip().split(" ", 1) for directive in client.get("/login/")["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'" and policy["default-src"] == "'self'"
    assert (policy["object-src"], policy["frame-ancestors"]) == ("'none'", "'none'")
