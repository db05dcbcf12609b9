from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import HttpRequest
from flowxobservatory.config import ENV_API_KEY, ENV_API_URL

from apps.tenancy.models import ApiKey
from apps.tracing.models import Run


def test_first_run_creates_admin_key_and_demo_data_and_second_run_keeps_them(client, db):
    out = StringIO()
    call_command("setup_local", url="http://127.0.0.1:8011/", stdout=out)
    text = out.getvalue()
    assert "Log in at http://127.0.0.1:8011/" in text
    password = text.split("password: ")[1].split()[0]
    # Ready to paste into a shell, under the names the SDK and the README's curl example read.
    lines = [line.strip() for line in text.splitlines()]
    assert f"export {ENV_API_URL}=http://127.0.0.1:8011" in lines
    (raw_key,) = [line.split("=", 1)[1] for line in lines if line.startswith(f"export {ENV_API_KEY}=")]
    assert client.login(request=HttpRequest(), username="admin", password=password)  # django-axes reads the request
    assert ApiKey.objects.for_raw_key(raw_key).app.slug == "demo"
    runs = Run.objects.count()
    assert runs > 100

    again = StringIO()
    call_command("setup_local", url="http://127.0.0.1:8012/", stdout=again)
    assert "keeping its data" in again.getvalue() and password not in again.getvalue()
    assert raw_key not in again.getvalue() and f"export {ENV_API_URL}=http://127.0.0.1:8012\n" in again.getvalue()
    assert get_user_model().objects.count() == 1 and Run.objects.count() == runs
