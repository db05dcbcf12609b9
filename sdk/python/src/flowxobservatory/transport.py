"""The one HTTP call the SDK makes: POST a gzip body to ``/api/report`` (stdlib urllib only)."""

from __future__ import annotations

import dataclasses
import email.utils
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping

from ._version import __version__

USER_AGENT = f"flx-observatory-lib/{__version__} (python)"


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


# (url, body, headers, timeout) -> Response; raises OSError (or http.client errors) when
# the server cannot be reached. Tests and the benchmark may swap in their own.
Transport = Callable[[str, bytes, Mapping[str, str], float], Response]


def urllib_transport(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return Response(reply.status, _lower_keys(reply.headers.items()), reply.read())
    except urllib.error.HTTPError as error:
        # urllib raises for every status >= 400; for us those are ordinary answers.
        with error:
            payload = error.read() if error.fp is not None else b""
            return Response(error.code, _lower_keys(error.headers.items()), payload)


def _lower_keys(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    # HTTP header names are case-insensitive; the consumer looks them up in lower case.
    return {name.lower(): value for name, value in items}


def request_headers(api_key: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "User-Agent": USER_AGENT,
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)
