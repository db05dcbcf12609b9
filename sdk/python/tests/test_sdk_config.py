"""Configuration from configure() and the FLOWX_OBSERVATORY_* environment."""

from __future__ import annotations

import pytest

import flowxobservatory as fo
from flowxobservatory.config import DEFAULT_API_URL, build_config, parse_tracing


def test_defaults_without_environment():
    config = build_config({}, environ={})
    assert config.api_url == DEFAULT_API_URL == "http://127.0.0.1:8000"
    assert (config.api_key, config.app_id, config.tracing) == (None, None, True)
    assert (config.max_queue_size, config.batch_size, config.flush_interval) == (10_000, 100, 0.5)
    assert config.report_url == "http://127.0.0.1:8000/api/report"


def test_environment_is_read():
    environ = {
        "FLOWX_OBSERVATORY_API_KEY": "env-key",
        "FLOWX_OBSERVATORY_API_URL": "https://obs.example.com/",
        "FLOWX_OBSERVATORY_APP_ID": "env-app",
        "FLOWX_OBSERVATORY_ORG_ID": "org-1",
        "FLOWX_OBSERVATORY_WORKSPACE_ID": "ws-1",
    }
    config = build_config({}, environ=environ)
    assert (config.api_key, config.app_id, config.org_id, config.workspace_id) == (
        "env-key",
        "env-app",
        "org-1",
        "ws-1",
    )
    assert config.report_url == "https://obs.example.com/api/report"


def test_explicit_arguments_beat_the_environment():
    environ = {"FLOWX_OBSERVATORY_API_KEY": "env-key", "OBSERVATORY_TRACING": "false"}
    config = build_config({"api_key": "arg-key", "tracing": True, "app_id": None}, environ)
    assert config.api_key == "arg-key"
    assert config.tracing is True


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        (" False ", False),
        ("true", True),
        ("1", True),
        ("", True),
        (None, True),
        ("maybe", True),
    ],
)
def test_tracing_flag_words(value, enabled):
    assert parse_tracing(value) is enabled


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"api_url": "localhost:8000"}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"flush_intervall": 1}, TypeError),
    ],
)
def test_bad_explicit_options_are_refused(options, error):
    with pytest.raises(error):
        fo.configure(**options)


def test_a_bad_environment_disables_tracing_instead_of_breaking_the_app(monkeypatch, caplog):
    monkeypatch.setenv("FLOWX_OBSERVATORY_API_URL", "not-a-url")

    @fo.tool
    def work():
        return "still works"

    assert work() == "still works"
    assert "configuration is invalid" in caplog.text


def test_environment_configures_the_lazy_client(server, monkeypatch, flushed, find):
    monkeypatch.setenv("FLOWX_OBSERVATORY_API_URL", server.url)
    monkeypatch.setenv("FLOWX_OBSERVATORY_API_KEY", "env-key")
    monkeypatch.setenv("FLOWX_OBSERVATORY_APP_ID", "env-app")
    monkeypatch.setenv("FLOWX_OBSERVATORY_ORG_ID", "org-1")
    monkeypatch.setenv("FLOWX_OBSERVATORY_WORKSPACE_ID", "ws-1")

    @fo.agent("bot")
    def run():
        return 1

    run()
    start = find(flushed(), "agent_start")
    assert server.requests[0].headers["Authorization"] == "Bearer env-key"
    assert start["app_id"] == "env-app"
    assert start["metadata"] == {"agent": "bot", "org_id": "org-1", "workspace_id": "ws-1"}


def test_reconfiguring_hands_over_queued_events(server, setup_sdk, dead_url, flushed):
    setup_sdk(dead_url, flush_interval=60, batch_size=1000)
    fo.track_event("queued-early", run_id="r")
    setup_sdk(server.url)
    assert [e["name"] for e in flushed()] == ["queued-early"]
    assert server.requests[0].headers["Authorization"].startswith("Bearer ")


def test_missing_api_key_is_warned_about(server, caplog):
    fo.configure(api_url=server.url)
    assert "has no API key" in caplog.text
