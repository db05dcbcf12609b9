"""Personas shared by every test (healthchecks' hc/test.py habit).

- alice owns the Acme organization and its `support-bot` app;
- charlie is a plain member of Acme;
- bob owns Globex and its `sales-bot` app, and must never see anything of Acme's.
Each organization has an API key for its app; `acme_client` / `globex_client` send it.
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.tenancy.models import ApiKey, Membership
from observatory.celery import app as celery_app
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture(autouse=True)
def isolated_cache_and_tasks(request, settings):
    """Each test starts with an empty process-local cache, runs Celery tasks in-process, and
    applies reported events inline.

    CI exports REDIS_URL for the tests marked `redis`, which talk to a real broker and
    worker; every other test must not depend on, or leave anything in, a shared Redis.
    """
    settings.OBSERVATORY_ASSEMBLY = "inline"  # tests of the worker mode say so themselves
    settings.OBSERVATORY_API_KEY_CACHE_SECONDS = 0  # pinned query counts include the key's lookup
    if request.node.get_closest_marker("redis"):
        yield
        return
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


# A queue of this test process's own, so that it never consumes (or leaves) anyone else's
# messages; one name for the whole session, since Celery sets its queues up on first use.
TEST_QUEUE = f"observatory-test-{uuid.uuid4().hex}"


@pytest.fixture
def celery_worker():
    """A real Celery worker (in a thread) on the Redis broker at REDIS_URL; skips without one."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs a real Redis broker: set REDIS_URL (CI does)")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at REDIS_URL is not reachable: {exc}")
    # Leave logging alone: a worker taking over the root logger would blind caplog in later tests.
    changes = {
        "broker_url": url, "task_always_eager": False, "task_default_queue": TEST_QUEUE,
        "worker_hijack_root_logger": False,
    }  # fmt: skip
    saved = {name: celery_app.conf.get(name) for name in changes}
    root_level = logging.getLogger().level  # the worker sets the root level to its own
    celery_app.conf.update(changes)
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield
    celery_app.conf.update(saved)
    logging.getLogger().setLevel(root_level)


@pytest.fixture
def acme(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def alice(acme):
    user = UserFactory(username="alice")
    MembershipFactory(organization=acme, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def charlie(acme):
    user = UserFactory(username="charlie")
    MembershipFactory(organization=acme, user=user)
    return user


@pytest.fixture
def bob(globex):
    user = UserFactory(username="bob")
    MembershipFactory(organization=globex, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def acme_app(acme):
    return AppFactory(organization=acme, name="Support Bot", slug="support-bot")


@pytest.fixture
def globex_app(globex):
    return AppFactory(organization=globex, name="Sales Bot", slug="sales-bot")


@pytest.fixture
def acme_key(acme_app) -> str:
    return ApiKey.issue(app=acme_app, name="acme test")[1]


@pytest.fixture
def globex_key(globex_app) -> str:
    return ApiKey.issue(app=globex_app, name="globex test")[1]


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def acme_client(acme_key) -> APIClient:
    return key_client(acme_key)


@pytest.fixture
def globex_client(globex_key) -> APIClient:
    return key_client(globex_key)
