"""Datasets: saved runs exported as JSON lines, streamed page by page (docs/DATASETS.md).

Two formats: `jsonl`, one line per saved run (its id, name, type, model, input, output,
metadata, tags and feedback); `openai`, the chat fine-tuning format (`{"messages": [...]}`)
for the runs whose input is a list of chat messages and whose output is an answer, the others
skipped and counted.

Memory stays constant however many runs are exported: the runs are read in keyset pages
(`id > last ORDER BY id LIMIT PAGE_SIZE`, over the partial index `run_app_saved_id`), each
page with one query for its feedback, and written out before the next page is read. Only
runs that existed when the export began are read (`id <= upto`), and for `openai` that first
query also counts the runs it will skip, so the count can go in a response header before
the body (see `Export` and docs/DATASETS.md for what "exact" means while runs change).

Whether a run fits the `openai` format is decided twice, by the same rules: in SQL
(`ChatShaped`, for the count and to page over fitting runs only) and in Python
(`chat_example`, which builds the line); tests/tracing/test_datasets.py holds the two to
the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import NotSupportedError
from django.db.models import BooleanField, Count, Func, Max, Q
from rest_framework.exceptions import ValidationError

from apps.tracing.filters import RunFilterSet
from apps.tracing.models import Feedback, Run, RunQuerySet

FORMATS = ("jsonl", "openai")
DEFAULT_FORMAT = "jsonl"
PAGE_SIZE = 500  # runs per query; read at run time (tests make it small)
CONTENT_TYPE = "application/x-ndjson"
SKIPPED_HEADER = "X-Observatory-Skipped"
JSONL_COLUMNS = ("app_id", "run_id", "name", "type", "model", "input", "output", "metadata", "tags")
CONTENT_TYPES = (str, list, type(None))  # a message's content: text, a list of parts, or null (tool calls)


def saved_runs(app) -> RunQuerySet:
    """The saved runs of one app: what the export reads (and filters)."""
    return Run.objects.for_app(app).filter(saved=True)


class DatasetFilterSet(RunFilterSet):
    """The runs list's filters without `ordering` (an export is in id order) and `saved` (always true)."""

    ordering = None
    saved = None


# As in RunFilterSet: `from` is declared as `from_`.
DatasetFilterSet.base_filters["from"] = DatasetFilterSet.base_filters.pop("from_")


# --- what fits the openai format ------------------------------------------------------------------


def chat_messages(value: Any) -> list | None:
    """The chat messages of a run's input: a non-empty list of `{"role": str, "content": ...}`
    (or `{"messages": [...]}`), else None."""
    messages = value.get("messages") if isinstance(value, dict) else value
    if isinstance(messages, list) and messages and all(_is_message(m) for m in messages):
        return messages
    return None


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("role"), str)
        and "content" in message
        and isinstance(message["content"], CONTENT_TYPES)
    )


def answer(output: Any) -> dict | None:
    """A run's output as the assistant's message: a string is its content; a dict with `role` and
    `content` is the message itself; a dict with `content` alone, an assistant message with it."""
    if isinstance(output, str):
        return {"role": "assistant", "content": output}
    if not isinstance(output, dict) or "content" not in output or not isinstance(output["content"], CONTENT_TYPES):
        return None
    if "role" in output:
        return output if isinstance(output["role"], str) else None
    return {"role": "assistant", "content": output["content"]}


def chat_example(input_: Any, output: Any) -> dict | None:
    """The fine-tuning example of a run, or None when it does not fit (skipped).

    A dict input's `tools` list goes along: the format takes the tools the model was offered.
    """
    messages, reply = chat_messages(input_), answer(output)
    if messages is None or reply is None:
        return None
    example: dict[str, Any] = {"messages": [*messages, reply]}
    if isinstance(input_, dict) and isinstance(input_.get("tools"), list):
        example["tools"] = input_["tools"]
    return example


# The same rules in SQL, per database: `{m}` is the messages' JSON (input or input.messages) in
# PostgreSQL, `{input}` and `{output}` the columns. CASE (not AND) guards the calls that fail on
# the wrong type (jsonb_array_length on a scalar, json_type on text that is not JSON).
_PG_MESSAGE_OK = (
    "jsonb_typeof(e.v) = 'object' AND COALESCE(jsonb_typeof(e.v -> 'role'), '') = 'string'"
    " AND COALESCE(jsonb_typeof(e.v -> 'content'), '') IN ('string', 'array', 'null')"
)
_PG_MESSAGES = "(CASE WHEN jsonb_typeof({input}) = 'object' THEN {input} -> 'messages' ELSE {input} END)"
_PG_CHAT_SHAPED = (
    "COALESCE(("
    f"CASE WHEN jsonb_typeof({_PG_MESSAGES}) = 'array' THEN jsonb_array_length({_PG_MESSAGES}) > 0"
    f" AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements({_PG_MESSAGES}) AS e(v) WHERE NOT ({_PG_MESSAGE_OK}))"
    " ELSE false END"
    ") AND ("
    "jsonb_typeof({output}) = 'string' OR (jsonb_typeof({output}) = 'object'"
    " AND COALESCE(jsonb_typeof({output} -> 'content'), '') IN ('string', 'array', 'null')"
    " AND COALESCE(jsonb_typeof({output} -> 'role'), 'string') = 'string')"
    "), false)"
)
_SQLITE_MESSAGES_OK = (
    "(json_array_length({input}{path}) > 0 AND NOT EXISTS (SELECT 1 FROM json_each({input}{path}) AS e"
    " WHERE NOT (CASE WHEN e.type = 'object' THEN COALESCE(json_type(e.value, '$.role'), '') = 'text'"
    " AND COALESCE(json_type(e.value, '$.content'), '') IN ('text', 'array', 'null') ELSE 0 END)))"
)
_SQLITE_LIST_OK = _SQLITE_MESSAGES_OK.replace("{path}", "")
_SQLITE_DICT_OK = _SQLITE_MESSAGES_OK.replace("{path}", ", '$.messages'")
_SQLITE_CHAT_SHAPED = (
    "COALESCE((CASE"
    f" WHEN json_type({{input}}) = 'array' THEN {_SQLITE_LIST_OK}"
    " WHEN json_type({input}) = 'object' AND json_type({input}, '$.messages') = 'array'"
    f" THEN {_SQLITE_DICT_OK}"
    " ELSE 0 END"
    ") AND ("
    "json_type({output}) = 'text' OR (json_type({output}) = 'object'"
    " AND COALESCE(json_type({output}, '$.content'), '') IN ('text', 'array', 'null')"
    " AND COALESCE(json_type({output}, '$.role'), 'text') = 'text')"
    "), 0)"
)


class ChatShaped(Func):
    """True when `chat_example(input, output)` is not None, computed by the database (never NULL)."""

    output_field = BooleanField()
    arity = 2

    def __init__(self, input_="input", output="output"):
        super().__init__(input_, output)

    def _render(self, template: str, compiler, connection):
        (input_sql, input_params), (output_sql, output_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions()
        )
        if input_params or output_params:  # columns only: their SQL is repeated in the template
            raise NotSupportedError("ChatShaped takes columns")
        return template.format(input=input_sql, output=output_sql), []

    def as_postgresql(self, compiler, connection, **extra):
        return self._render(_PG_CHAT_SHAPED, compiler, connection)

    def as_sqlite(self, compiler, connection, **extra):
        return self._render(_SQLITE_CHAT_SHAPED, compiler, connection)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"the openai export supports PostgreSQL and SQLite, not {connection.vendor}")


# --- the export ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Export:
    """A prepared export: `lines()` streams it; `skipped` (openai) is known before the first line.

    `upto` is the largest id among the runs to export when the export was prepared: runs saved
    or created later never appear, so the body and `skipped` describe the same runs (unless a
    run changes while the file is being written; docs/DATASETS.md).
    """

    queryset: RunQuerySet
    format: str
    upto: int | None
    skipped: int | None
    filename: str

    def lines(self) -> Iterator[bytes]:
        """The file, one page of lines per chunk."""
        if self.upto is None:
            return
        if self.format == "openai":
            for rows in _pages(self.queryset.filter(ChatShaped()), ("input", "output"), self.upto):
                examples = (chat_example(input_, output) for _, input_, output in rows)
                yield b"".join(orjson.dumps(example) + b"\n" for example in examples if example is not None)
            return
        for rows in _pages(self.queryset, JSONL_COLUMNS, self.upto):
            feedback = _feedback_of(rows)
            yield b"".join(orjson.dumps(_jsonl_line(row, feedback)) + b"\n" for row in rows)


def check_format(value: str | None) -> str:
    value = value or DEFAULT_FORMAT
    if value not in FORMATS:
        raise ValidationError({"format": [f"Must be one of {', '.join(FORMATS)}."]})
    return value


def export_of_app(app, params, format_: str | None) -> Export:
    """The export of `app`'s saved runs that match the runs list's filters in `params` (a QueryDict).

    Invalid values raise the API's ValidationError (the format's error with the filters').
    """
    errors: dict[str, list] = {}
    try:
        format_ = check_format(format_)
    except ValidationError as exc:
        errors.update(exc.detail)
    filterset = DatasetFilterSet(params, queryset=saved_runs(app), app=app)
    if not filterset.is_valid():
        errors.update(filterset.errors)
    if errors:
        raise ValidationError(errors)
    name = _safe(app.slug) or "app"
    suffix = "saved-openai.jsonl" if format_ == "openai" else "saved.jsonl"
    return export(filterset.qs, format_, filename=f"{name}-{suffix}")


def export(queryset: RunQuerySet, format_: str, *, filename: str = "saved-runs.jsonl") -> Export:
    """Prepare the export of the runs of `queryset` (any Run queryset: the admin's selection too).

    One query, before any line is written: the largest id (and, for `openai`, how many runs
    will be skipped). The count reads the runs' input and output in the database, nothing of
    them leaves it.
    """
    queryset = queryset.order_by()
    if format_ == "openai":
        found = queryset.aggregate(upto=Max("id"), skipped=Count("id", filter=~Q(ChatShaped())))
        return Export(queryset, format_, found["upto"], found["skipped"], filename)
    return Export(queryset, format_, queryset.aggregate(upto=Max("id"))["upto"], None, filename)


def _pages(queryset: RunQuerySet, columns: tuple[str, ...], upto: int) -> Iterator[list[tuple]]:
    """(id, *columns) of the runs with id <= upto, in id order, PAGE_SIZE at a time (keyset: id > last)."""
    size, last = PAGE_SIZE, 0
    while True:
        page = queryset.filter(id__gt=last, id__lte=upto).order_by("id").values_list("id", *columns)
        rows = list(page[:size])
        if rows:
            yield rows
        if len(rows) < size:
            return
        last = rows[-1][0]


def _feedback_of(rows: list[tuple]) -> dict[tuple[int, str], list[dict]]:
    """{(app id, run id): [{rating, comment}, …]} of a page of jsonl rows, oldest first, in one query."""
    apps, run_ids = {row[1] for row in rows}, {row[2] for row in rows}
    found: dict[tuple[int, str], list[dict]] = {}
    ratings = Feedback.objects.for_apps(apps).filter(run_id__in=run_ids).order_by("timestamp", "id")
    for app_id, run_id, rating, comment in ratings.values_list("app_id", "run_id", "rating", "comment"):
        found.setdefault((app_id, run_id), []).append({"rating": rating, "comment": comment})
    return found


def _jsonl_line(row: tuple, feedback: dict[tuple[int, str], list[dict]]) -> dict:
    _, app_id, run_id, name, type_, model, input_, output, metadata, tags = row
    return {
        "run_id": run_id, "name": name, "type": type_, "model": model, "input": input_, "output": output,
        "metadata": metadata, "tags": tags, "feedback": feedback.get((app_id, run_id), []),
    }  # fmt: skip


def _safe(text: str) -> str:
    """A file name part of plain characters (it is quoted into Content-Disposition)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100]
