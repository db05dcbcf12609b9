"""The Threads pages: the current app's conversations (the API's filters, keyset pages) and one
conversation as chat bubbles.

The list reads through `threads.selectors.page_of_threads`, which is GET /api/threads/'s own
FilterSet and paginator: the same parameter names (`agent`, `user_id`, `user_email`,
`has_feedback`, `from`, `to`, `cursor`, `limit`), the same cursors and the same error messages,
plus `app` (the app's public id) and `range` (a preset that sets `from`). With htmx the filters
swap only the results (the `results` partial) and push the URL.
"""

from __future__ import annotations

import json
from datetime import UTC

from django.contrib.auth.decorators import login_required
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from apps.tenancy.api.exceptions import exception_handler
from apps.threads.selectors import agents_of, conversation, page_of_threads, threads_of
from apps.web.scoping import page_app
from apps.web.views.common import RANGES, empty_state, usd, with_range

FEEDBACK_CHOICES = [("", "Any feedback"), ("true", "With feedback"), ("false", "Without feedback")]
ROLES = {"user", "assistant", "system", "tool"}  # anything else is styled like a tool message
MAX_CONTENT_CHARS = 20_000  # a message longer than this is cut, with a note; the API has it whole


@login_required
def thread_list(request):
    app = page_app(request)
    if app is None:
        return render(request, "web/threads.html", empty_state(request, None, "No apps yet"))
    params = _params(request.GET, app)
    context = {
        "app": app,
        "params": params,
        "values": _form_values(request.GET),
        "ranges": list(RANGES),
        "active_range": params.get("range", ""),
        "agents": _agent_choices(app, request.GET.get("agent", "")),
        "feedback_choices": FEEDBACK_CHOICES,
        "filtered": any(
            params.get(name) for name in ("agent", "user_id", "user_email", "has_feedback", "from", "to", "range")
        ),
    }
    status = 200
    try:
        page = page_of_threads(app, with_range(request.GET.copy()))
    except ValidationError as exc:
        context["error"], status = exception_handler(exc, {}).data["error"], 400
    else:
        for thread in page.threads:
            thread.tokens_label, thread.cost_label = _tokens(thread.total_tokens), usd(thread.total_cost)
        context["page"] = page
        if not page.threads and not context["filtered"] and not params.get("cursor"):
            if not threads_of(app).exists():
                context.update(empty_state(request, app, "No threads yet"), no_threads=True)
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "web/threads.html#results", context, status=status)
        # Only the parameters that say something, so the address bar stays readable.
        response["HX-Push-Url"] = request.path + (f"?{params.urlencode()}" if params else "")
    else:
        response = render(request, "web/threads.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def thread_page(request, pk: int):
    app = page_app(request)
    if app is None:
        raise Http404("No such thread.")
    thread = get_object_or_404(threads_of(app), pk=pk)
    messages = conversation(thread, app)
    bubbles = [
        {
            "message": message,
            "kind": message.role if message.role in ROLES else "other",
            "body": _body(message.content),
            "latency": _seconds(message.latency_s),
            "tokens": _tokens(message.tokens) if message.tokens else "",
            "cost": usd(message.cost) if message.cost else "",
            "run_url": _run_url(message.run_id, app),
        }
        for message in messages
    ]
    context = {
        "app": app,
        "thread": thread,
        # What the conversation is about: its first user message (the list's preview is the last one).
        "title": next((m.preview for m in messages if m.role == "user" and m.preview), thread.preview),
        "bubbles": bubbles,
        "tokens": _tokens(thread.total_tokens),
        "cost": usd(thread.total_cost),
    }
    return render(request, "web/thread.html", context)


def _params(query: QueryDict, app) -> QueryDict:
    """The request's parameters without the empty ones (a GET form sends every field), with the app,
    and without `range` when `from` or `to` overrides it: what links and the pushed URL carry."""
    params = QueryDict(mutable=True)
    for name, values in query.lists():
        kept = [value for value in values if value]
        if kept and name != "app":
            params.setlist(name, kept)
    if params.get("from") or params.get("to"):
        params.pop("range", None)
    params["app"] = str(app.public_id)
    return params


def _form_values(query: QueryDict) -> dict:
    """What the filter controls show: from/to as `<input type="datetime-local">` values, in UTC."""
    values = {name: query.get(name, "") for name in ("agent", "user_id", "user_email", "has_feedback")}
    for name in ("from", "to"):
        raw = query.get(name, "")
        try:
            when = parse_datetime(raw) if raw else None
            if when is not None:
                when = when.astimezone(UTC) if when.tzinfo else when
                raw = when.strftime("%Y-%m-%dT%H:%M:%S" if when.second else "%Y-%m-%dT%H:%M")
        except (ValueError, OverflowError):  # shown as sent; the filter says what is wrong with it
            pass
        values[name] = raw
    return values


def _agent_choices(app, current: str) -> list[str]:
    agents = agents_of(app)
    if current and current not in agents:
        agents.append(current)  # a name past the bound, or one typed into the URL, stays selectable
    return agents


def _body(content) -> dict:
    """A message's content as the page shows it: text, or pretty JSON (both escaped by the template)."""
    if content is None or content == "":
        return {"kind": "empty", "text": ""}
    if isinstance(content, str):
        kind, text = "text", content
    elif isinstance(content, list) and content and all(_is_text_part(part) for part in content):
        kind, text = "text", "\n\n".join(part["text"] for part in content)  # OpenAI-style content parts
    else:
        kind, text = "json", json.dumps(content, indent=2, ensure_ascii=False)
    cut = len(text) - MAX_CONTENT_CHARS
    return {"kind": kind, "text": text[:MAX_CONTENT_CHARS] if cut > 0 else text, "cut": max(cut, 0)}


def _is_text_part(part) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)


def _run_url(run_id: str | None, app) -> str | None:
    if not run_id:
        return None
    try:
        return f"{reverse('run', args=[run_id])}?app={app.public_id}"
    except NoReverseMatch:  # a run id with a "/" has no run page URL (yet)
        return None


def _tokens(value: int | None) -> str:
    return f"{value:,}" if value is not None else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.0f} s"
    minutes = value / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
