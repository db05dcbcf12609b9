from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from apps.tenancy.models import App
from apps.threads.models import Thread
from apps.tracing.models import Feedback, Run


def test_load_demo_writes_realistic_traces_through_the_pipeline(db):
    out = StringIO()
    call_command("load_demo", "--runs", "300", stdout=out)
    app = App.objects.get(slug="demo")
    assert "Loaded" in out.getvalue() and str(app.public_id) in out.getvalue()
    runs = Run.objects.filter(app=app)
    assert runs.count() >= 300
    types = dict(runs.values_list("type").annotate(n=Count("id")))
    assert set(types) == {"agent", "chain", "tool", "llm"}
    assert runs.filter(status="error").exists()
    assert runs.filter(type="llm", pricing__cost__gt=0).count() == types["llm"]
    assert runs.values("model").distinct().count() >= 5
    assert runs.exclude(parent_run_id=None).filter(agent=None).count() == 0
    assert runs.values("user_id").distinct().count() > 5
    threads = Thread.objects.filter(app=app)
    assert threads.filter(thread_id__isnull=False).exists() and threads.filter(thread_id__isnull=True).exists()
    assert threads.filter(has_feedback=True).exists() and threads.filter(total_cost__gt=0).exists()
    assert Feedback.objects.filter(app=app, rating="positive").exists()
    assert runs.filter(positive_feedback=True).exists() and runs.filter(saved=True).exists()


def test_load_demo_into_a_named_app_and_bad_arguments(acme_app):
    call_command("load_demo", "--app", "support-bot", "--org", "acme", "--runs", "20", stdout=StringIO())
    assert Run.objects.filter(app=acme_app).count() >= 20
    with pytest.raises(CommandError):
        call_command("load_demo", "--runs", "0", stdout=StringIO())
