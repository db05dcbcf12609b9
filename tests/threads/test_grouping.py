"""Chat events become thread messages: grouping by thread_id, else by agent and user in a 30-minute window."""

from datetime import UTC, datetime, timedelta

from apps.threads.models import Thread, ThreadMessage
from tests.helpers import ingest

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def chat(content: str, at: timedelta = timedelta(0), **fields) -> dict:
    meta = {"agent": fields.pop("agent", "bot"), "user_id": fields.pop("user", "u1")}
    return {"name": "chat", "role": fields.pop("role", "user"), "content": content,
            "timestamp": (T0 + at).isoformat(), "metadata": meta, **fields}  # fmt: skip


def threads_by_content() -> list[list[str]]:
    return [
        list(t.messages.order_by("timestamp").values_list("content", flat=True))
        for t in Thread.objects.order_by("started_at", "id")
    ]


def test_messages_with_a_thread_id_join_that_thread(acme_app):
    ingest(
        acme_app, chat("a", thread_id="t1"), chat("b", timedelta(hours=5), thread_id="t1"), chat("c", thread_id="t2")
    )
    ingest(acme_app, chat("d", timedelta(days=3), thread_id="t1", user="someone-else"))
    assert sorted(threads_by_content()) == [["a", "b", "d"], ["c"]]
    assert Thread.objects.get(thread_id="t1").message_count == 3


def test_without_thread_id_a_message_joins_within_30_minutes_inclusive(acme_app):
    ingest(acme_app, chat("a"), chat("b", timedelta(minutes=30)))
    assert threads_by_content() == [["a", "b"]]
    assert Thread.objects.get().thread_id is None


def test_a_message_just_over_30_minutes_later_opens_a_new_thread(acme_app):
    ingest(acme_app, chat("a"), chat("b", timedelta(minutes=30, seconds=1)))
    assert threads_by_content() == [["a"], ["b"]]


def test_the_window_follows_the_last_message_across_batches(acme_app):
    ingest(acme_app, chat("a"))
    ingest(acme_app, chat("b", timedelta(minutes=29)))
    ingest(acme_app, chat("c", timedelta(minutes=58)))
    ingest(acme_app, chat("d", timedelta(minutes=88, seconds=1)))
    assert threads_by_content() == [["a", "b", "c"], ["d"]]


def test_two_users_or_two_agents_never_share_a_fallback_thread(acme_app):
    ingest(
        acme_app, chat("u1"), chat("u2", timedelta(minutes=1), user="u2"), chat("x", timedelta(minutes=2), agent="x")
    )
    assert sorted(threads_by_content()) == [["u1"], ["u2"], ["x"]]
    assert {(t.agent, t.user_id) for t in Thread.objects.all()} == {("bot", "u1"), ("bot", "u2"), ("x", "u1")}


def test_a_user_email_identifies_the_user_when_there_is_no_user_id(acme_app):
    email = {"name": "chat", "role": "user", "metadata": {"agent": "bot", "user_email": "e@example.com"}}
    ingest(acme_app, {**email, "content": "a", "timestamp": T0.isoformat()},
           {**email, "content": "b", "timestamp": (T0 + timedelta(minutes=5)).isoformat()})  # fmt: skip
    assert threads_by_content() == [["a", "b"]]


def test_an_out_of_order_message_joins_the_thread_it_falls_inside(acme_app):
    ingest(acme_app, chat("first"), chat("third", timedelta(minutes=40)), chat("fourth", timedelta(minutes=60)))
    assert threads_by_content() == [["first"], ["third", "fourth"]]
    # A late message 25 minutes before "third" is within the window of both; it joins the most recent.
    ingest(acme_app, chat("second", timedelta(minutes=15)))
    assert threads_by_content() == [["first"], ["second", "third", "fourth"]]
    assert Thread.objects.get(preview="fourth").started_at == T0 + timedelta(minutes=15)


def test_a_message_with_a_thread_id_never_joins_a_window_thread(acme_app):
    ingest(acme_app, chat("loose"), chat("named", timedelta(minutes=1), thread_id="t"))
    assert sorted(threads_by_content()) == [["loose"], ["named"]]


def test_redelivered_chat_events_add_no_message(acme_app):
    batch = [chat("a", thread_id="t"), chat("b", timedelta(seconds=1), thread_id="t"), chat("c", timedelta(minutes=1))]
    ingest(acme_app, *batch)
    ingest(acme_app, *batch)
    ingest(acme_app, batch[0], batch[0])
    assert ThreadMessage.objects.count() == 3
    assert sorted(Thread.objects.values_list("message_count", flat=True)) == [1, 2]


def test_messages_of_two_apps_never_meet(acme_app, globex_app):
    ingest(acme_app, chat("acme", thread_id="same"))
    ingest(globex_app, chat("globex", thread_id="same"))
    assert Thread.objects.filter(thread_id="same").count() == 2
