"""JSON for the API with orjson: several times faster than the standard encoder on large lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from rest_framework.renderers import BaseRenderer


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # as DRF renders decimals with COERCE_DECIMAL_TO_STRING off
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class ORJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        # Keys of DRF's error dicts may be lazy translation strings: orjson needs real str keys.
        return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
