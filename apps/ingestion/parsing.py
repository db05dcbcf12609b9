"""From an HTTP body to the list of raw events, or a typed error that maps to one status code."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import orjson
from django.conf import settings


class BatchRejected(Exception):
    """The whole request is refused; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BodyTooLarge(BatchRejected):
    status = 413


class LengthRequired(BatchRejected):
    status = 411


@dataclass(frozen=True, slots=True)
class ParsedBody:
    events: list
    lenient: bool  # parsed by the fallback parser: NaN or lone surrogates may be inside


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BatchRejected(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    # wbits 47 accepts gzip and zlib streams; max_length stops a decompression bomb early.
    inflater = zlib.decompressobj(47)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BatchRejected(f"body is not valid {encoding}: {exc}") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise BodyTooLarge(f"body is larger than {max_bytes} bytes once decompressed")
    return data


def _int(digits: str) -> int:
    # Python refuses to convert more than 4300 digits; anything past 20 is out of the
    # 64-bit range that validation refuses per event, so its exact value never matters.
    return int(digits) if len(digits) <= 21 else 2**64


def parse_body(data: bytes, max_events: int) -> ParsedBody:
    lenient = False
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as strict_error:
        # orjson refuses NaN, Infinity, lone surrogates and integers over 64 bits outright.
        # The standard parser accepts them, so one bad event becomes a per-event error
        # instead of losing the whole batch; it is only tried when the fast parser has failed.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BatchRejected(
                f"body is not valid UTF-8: byte {data[exc.start]:#04x} at position {exc.start}"
            ) from None
        try:
            document = json.loads(text, parse_int=_int)
        except (ValueError, RecursionError):
            raise BatchRejected(f"body is not valid JSON: {strict_error}") from None
        lenient = True
    if not isinstance(document, dict):
        raise BatchRejected('body must be a JSON object: {"events": [...]}')
    events = document.get("events")
    if not isinstance(events, list):
        raise BatchRejected('"events" must be a list of event objects')
    if not events:
        raise BatchRejected('"events" is empty')
    if len(events) > max_events:
        raise BodyTooLarge(f"{len(events)} events is more than the limit of {max_events} per request")
    return ParsedBody(events=events, lenient=lenient)


def read_body(request) -> bytes:
    """The request body, decompressed, within OBSERVATORY_MAX_BODY_BYTES (else BodyTooLarge).

    A chunked body (no Content-Length, as OpenTelemetry's JavaScript exporter sends) is read
    from the WSGI input when the server de-chunks it and says so (`wsgi.input_terminated`:
    gunicorn); Django's own development server cannot, which is a 411 naming the fix.
    """
    limit = settings.OBSERVATORY_MAX_BODY_BYTES
    meta = request.META
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BatchRejected("Content-Length is not a number") from None
    if length > limit:
        raise BodyTooLarge(f"body is larger than the limit of {limit} bytes")
    if not meta.get("CONTENT_LENGTH") and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not meta.get("wsgi.input_terminated"):
            raise LengthRequired("a chunked body needs a server that de-chunks it (gunicorn); send Content-Length")
        body = meta["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise BodyTooLarge(f"body is larger than the limit of {limit} bytes")
    else:
        body = request.body
    return decompress(body, meta.get("HTTP_CONTENT_ENCODING", ""), limit)
