from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.tenancy.models import ApiKey, App
from tests.conftest import key_client


def run(*args) -> list[str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue().splitlines()


def test_it_prints_a_working_key_as_the_last_line(acme_app):
    raw_key = run("support-bot")[-1]
    assert ApiKey.objects.for_raw_key(raw_key).app == acme_app
    assert key_client(raw_key).get("/api/apps/").status_code == 200


def test_it_creates_org_and_app_with_create(db):
    raw_key = run("new-bot", "--create")[-1]
    app = App.objects.get(slug="new-bot")
    assert app.organization.slug == "default"
    assert ApiKey.objects.for_raw_key(raw_key).app == app


def test_it_creates_in_a_named_org(db):
    run("x-bot", "--org", "initech", "--create")
    assert App.objects.get(slug="x-bot").organization.slug == "initech"


def test_it_refuses_an_unknown_app_without_create(db):
    with pytest.raises(CommandError, match="no app 'ghost'"):
        run("ghost")
    assert not App.objects.exists()


def test_it_refuses_an_ambiguous_slug(acme, globex):
    run("bot", "--org", "acme", "--create")
    run("bot", "--org", "globex", "--create")
    with pytest.raises(CommandError, match="several organizations"):
        run("bot")
    assert ApiKey.objects.for_raw_key(run("bot", "--org", "globex")[-1]).app.organization == globex


def test_the_command_exits_non_zero_from_the_shell(db, tmp_path):
    import subprocess
    import sys

    from django.conf import settings

    # A real process against a throwaway SQLite file: exit status and message on stderr.
    env = {"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "ghost"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "no app 'ghost'" in result.stderr
