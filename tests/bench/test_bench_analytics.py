"""A tiny run of bench/analytics.py against a live server, so the analytics benchmark never rots."""

from __future__ import annotations

import json

import pytest

from bench import analytics


@pytest.mark.django_db(transaction=True)
def test_analytics_times_every_endpoint_and_the_page(live_server, acme_app, acme_key, tmp_path):
    result = analytics.run(
        url=live_server.url, key=acme_key, runs=200, repeat=2, json_path=tmp_path / "analytics.json", quiet=True
    )

    assert not result["summary"]["errors"], [
        (m["request"], m.get("status"), m.get("error")) for m in result["requests"]
    ]
    measured = {m["request"]: m for m in result["requests"]}
    assert len(measured) == 9 and {m["status"] for m in measured.values()} == {200}
    assert measured["page /analytics/"]["bytes"] > measured["API models"]["bytes"] > 0
    assert all(m["server_p95_ms"] is not None for m in measured.values())
    assert "worst API p95" in analytics.report(result)
    assert json.loads((tmp_path / "analytics.json").read_text())["summary"]["errors"] == []
