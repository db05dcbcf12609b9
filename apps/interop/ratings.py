"""What another tool's score means as our thumb (`positive` / `negative`), when it says so clearly."""

from __future__ import annotations

import math
from typing import Any

POSITIVE = {"up", "thumbs_up", "thumbsup", "+1", "👍", "positive", "good", "yes", "true", "correct", "helpful", "1"}
NEGATIVE = {"down", "thumbs_down", "thumbsdown", "-1", "👎", "negative", "bad", "no", "false", "incorrect", "wrong",
            "unhelpful", "0"}  # fmt: skip


def rating_of(value: Any) -> str | None:
    """`positive`, `negative`, or None when the value is not a clear verdict.

    Booleans and the usual words and emoji as they say. Numbers by their scale: 0–1 (a
    probability or a Langfuse numeric score) positive from 0.5, 1–5 stars from 3, 1–10 from 6;
    negative numbers are negative, larger ones positive.
    """
    if isinstance(value, bool):
        return "positive" if value else "negative"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        for top, threshold in ((1, 0.5), (5, 3), (10, 6)):
            if 0 <= value <= top:
                return "positive" if value >= threshold else "negative"
        return "negative" if value < 0 else "positive"
    if isinstance(value, str):
        word = value.strip().lower()
        return "positive" if word in POSITIVE else "negative" if word in NEGATIVE else None
    return None
