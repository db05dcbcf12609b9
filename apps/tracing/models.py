"""Runs (one execution of an agent, chain, tool or LLM call) and the raw events they are built from."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import F, Lookup, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.costs.models import COST, ModelCost
from apps.tenancy.models import App, TenantQuerySet

# A run still `started` this long after it began is shown as timed out (a UI-only state).
TIMEOUT_AFTER = timedelta(minutes=5)


class Status(models.TextChoices):
    STARTED = "started"
    SUCCESS = "success"
    ERROR = "error"


# Order-independent merge of statuses: a run only moves forward, and an explicit error wins.
STATUS_RANK = {Status.STARTED: 0, Status.SUCCESS: 1, Status.ERROR: 2}


@models.JSONField.register_lookup
class AnyOf(Lookup):
    """`tags__any_of=["a", "b"]`: the JSON array holds at least one of the strings.

    PostgreSQL answers with the jsonb `?|` operator, which the GIN index on tags serves;
    SQLite, which has no such index, looks through json_each.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} ?| %s", [*lhs_params, list(self.rhs)]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        placeholders = ", ".join(["%s"] * len(values))
        return f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value IN ({placeholders}))", [
            *lhs_params,
            *values,
        ]


class RunQuerySet(TenantQuerySet):
    def llm_calls(self) -> RunQuerySet:
        return self.filter(type="llm")

    def recent(self) -> RunQuerySet:
        return self.order_by("-started_at", "-id")

    def with_cost(self) -> RunQuerySet:
        """Runs carrying `.cost` from their RunCost row, in the same query.

        Scalar subqueries rather than a join: PostgreSQL evaluates them only for the rows of
        the page (after the sort and limit), and without a join in the query the planner
        weighs "walk the sort index, filtering" against "fetch the few matching rows, then
        sort" correctly (a join made it walk 48,000 index entries to find one user's runs).
        """
        return self.annotate(cost=Subquery(RunCost.objects.filter(run=OuterRef("pk")).values("cost")[:1]))


class Run(models.Model):
    """One execution of an agent, chain, tool or LLM call, assembled from its events.

    Identified by (app, run_id): run ids are unique per app, never globally. Runs are
    written only by `tracing.services.apply_run_events`, which merges events in any order.
    `started_at` is never empty: until the start event arrives it holds the earliest time
    seen for the run (`has_start` tells which).
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="runs", db_index=False)
    run_id = models.CharField(max_length=128)
    parent_run_id = models.CharField(max_length=128, null=True, blank=True)
    type = models.CharField(max_length=32)
    name = models.CharField(max_length=200, help_text="Display name.")
    run_name = models.CharField(max_length=200, null=True, blank=True, help_text="Name given by the client.")
    agent = models.CharField(max_length=200, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    has_start = models.BooleanField(default=False)
    has_end = models.BooleanField(default=False)
    model = models.CharField(max_length=200, null=True, blank=True)
    prompt_tokens = models.BigIntegerField(null=True, blank=True)
    completion_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cached_prompt_tokens = models.BigIntegerField(null=True, blank=True, help_text="Part of prompt_tokens.")
    tags = models.JSONField(default=list, blank=True)
    user_id = models.CharField(max_length=200, null=True, blank=True)
    user_email = models.CharField(max_length=254, null=True, blank=True)
    user_props = models.JSONField(null=True, blank=True)
    thread_id = models.CharField(max_length=128, null=True, blank=True)
    saved = models.BooleanField(default=False)
    # When the run was last saved (None while it is not): set with `saved` by tracing.services,
    # never by a merge. What protects a run from retention is `saved`, not this.
    saved_at = models.DateTimeField(null=True, blank=True)
    # Whether any feedback on the run (or on a thread message linked to it) is positive /
    # negative; kept by the ingestion path so the feedback filters can use an index.
    positive_feedback = models.BooleanField(default=False)
    negative_feedback = models.BooleanField(default=False)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A fingerprint of the run's search text (RunSearch): the text is rewritten only when it changes.
    search_digest = models.BigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = RunQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "run_id"], name="run_unique_per_app")]
        # Every list is one app, newest first (or by a sort column), so each index leads with
        # the app and ends with the sort key: an equality filter plus ORDER BY ... LIMIT reads
        # one page of index entries. docs/API.md maps filters to indexes. The GIN indexes for
        # tags and search are PostgreSQL-only (migration 0002).
        indexes = [
            models.Index(fields=["app", "-started_at", "-id"], name="run_app_started"),
            models.Index(fields=["app", "type", "-started_at", "-id"], name="run_app_type_started"),
            models.Index(fields=["app", "model", "-started_at", "-id"], name="run_app_model_started"),
            models.Index(fields=["app", "agent", "-started_at", "-id"], name="run_app_agent_started"),
            models.Index(fields=["app", "user_id", "-started_at"], name="run_app_user_started"),
            models.Index(fields=["app", "user_email", "-started_at"], name="run_app_email_started"),
            models.Index(fields=["app", "name", "-started_at"], name="run_app_name_started"),
            models.Index(
                fields=["app", "status", "-started_at"], name="run_app_unfinished", condition=~Q(status="success")
            ),
            models.Index(fields=["app", "parent_run_id"], name="run_app_parent"),
            # Root runs of one type (root=true on LLM Calls, whose default is type=llm): in an
            # agent app LLM calls are rarely roots, and walking every LLM run to find none took 0.5 s.
            models.Index(
                fields=["app", "type", "-started_at", "-id"],
                name="run_app_root_type_started",
                condition=Q(parent_run_id__isnull=True),
            ),
            models.Index(fields=["app", "thread_id"], name="run_app_thread", condition=Q(thread_id__isnull=False)),
            models.Index(fields=["app", "-started_at"], name="run_app_saved", condition=Q(saved=True)),
            # The dataset export's keyset pages (id > last, by id) and the saved runs admin (newest
            # save first): only saved runs are in them, so they cost nothing to runs that are not.
            models.Index(fields=["app", "id"], name="run_app_saved_id", condition=Q(saved=True)),
            models.Index(fields=["-saved_at", "-id"], name="run_saved_at", condition=Q(saved=True)),
            models.Index(
                fields=["app", "-started_at"],
                name="run_app_feedback",
                condition=Q(positive_feedback=True) | Q(negative_feedback=True),
            ),
            # The sort keys of the runs list for nullable columns (see tracing/api/pagination.sort_key).
            models.Index(F("app"), Coalesce("latency_s", Value(-1.0)).desc(), F("id").desc(), name="run_app_latency"),
            models.Index(F("app"), Coalesce("total_tokens", Value(-1)).desc(), F("id").desc(), name="run_app_tokens"),
            # The LLM Calls page lists type=llm runs; these keep its latency and token sorts on an index.
            models.Index(
                F("app"),
                Coalesce("latency_s", Value(-1.0)).desc(),
                F("id").desc(),
                name="run_app_llm_latency",
                condition=Q(type="llm"),
            ),
            models.Index(
                F("app"),
                Coalesce("total_tokens", Value(-1)).desc(),
                F("id").desc(),
                name="run_app_llm_tokens",
                condition=Q(type="llm"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name} ({self.run_id})"

    @property
    def display_status(self) -> str:
        if self.status == Status.STARTED and timezone.now() - self.started_at > TIMEOUT_AFTER:
            return "timed_out"
        return self.status


class SavedRun(Run):
    """Saved runs, for their page in the Django admin (tracing.admin.SavedRunAdmin): the same rows."""

    class Meta:
        proxy = True
        verbose_name = "saved run"
        verbose_name_plural = "saved runs"


# What analytics reads of RunCost besides app and started_at (the covering index's other columns).
ANALYTICS_COLUMNS = ["type", "model", "agent", "user_id", "status", "root", "latency_s", "cost", "prompt_tokens",
                     "completion_tokens"]  # fmt: skip


class RunCost(models.Model):
    """The price of a run and what it is computed from, in a narrow table of its own.

    Repricing rewrites millions of costs at once (tracing.repricing). Rewriting the wide,
    many-indexed run rows would update every index for every run; these rows are a few
    dozen bytes with a few indexes. They also carry the pricing inputs (copied from the run
    when it is written), so that the recalculation is one statement over this table alone:
    a concurrent write of the same run is re-read by the database before it is repriced,
    never mixed with older values from another table. Every run has one.

    They also carry what analytics groups and counts by (agent, user, status, latency, root),
    copied from the run by every write of it (tracing.services), so that a month of an app's
    runs is aggregated from one covering index instead of the wide run rows (docs/ANALYTICS.md).
    """

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="pricing", db_column="run_pk"
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The run's type and model again: only llm runs are priced, and lists sorted by cost and
    # filtered by type or model walk this table's own (app, type|model, cost) indexes.
    type = models.CharField(max_length=32, default="")
    model = models.CharField(max_length=200, null=True, blank=True)
    started_at = models.DateTimeField()
    prompt_tokens = models.BigIntegerField(null=True, blank=True)
    completion_tokens = models.BigIntegerField(null=True, blank=True)
    cached_prompt_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False)
    cost = models.DecimalField(**COST, default=0)
    cost_row = models.ForeignKey(ModelCost, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The run's again, for analytics (agent and user_id as stored: inherited ones included).
    agent = models.CharField(max_length=200, null=True, blank=True)
    user_id = models.CharField(max_length=200, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    latency_s = models.FloatField(null=True, blank=True)
    root = models.BooleanField(default=True, help_text="The run has no parent.")

    objects = TenantQuerySet.as_manager()

    class Meta:
        # Sorting the runs list by cost walks one of these, joining each entry to its run.
        indexes = [
            models.Index(fields=["app", "-cost", "-run"], name="runcost_app_cost"),
            models.Index(fields=["app", "type", "-cost", "-run"], name="runcost_app_type_cost"),
            models.Index(fields=["app", "model", "-cost", "-run"], name="runcost_app_model_cost"),
            # Analytics over a window: an index-only scan on PostgreSQL (INCLUDE; a plain index on SQLite).
            models.Index(fields=["app", "started_at"], include=ANALYTICS_COLUMNS, name="runcost_app_started"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.cost}"


class RunSearch(models.Model):
    """What the runs search looks through: lower-cased name, agent, model and the start of input and output.

    In a table of its own because its trigram index (PostgreSQL) holds about one entry per
    character: kept on the run row, every rewrite of the run — each event, each flag —
    would re-enter them all. Here a run's text is written only when it changes.

    The index is over `text`, which holds the text's distinct words (split on whitespace, in
    order, once each: about a third of the characters, so half the indexing cost); `full_text`
    holds the text itself, unindexed, when that differs. Every word of a search is a substring
    of one word of a matching text, so the index finds the candidates and `full_text` decides
    (tracing.filters.by_search). Runs written before words were kept have their whole text in
    `text` and no `full_text`: the same search finds them.
    """

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="search", db_column="run_pk"
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    text = models.TextField(help_text="The distinct words of the search text (the whole text if no full_text).")
    full_text = models.TextField(null=True, blank=True, help_text="The search text, when it differs from `text`.")

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return self.text[:60]


class QueuedBatch(models.Model):
    """Accepted events not stored or applied yet: one row per request (`OBSERVATORY_ASSEMBLY=worker`).

    /api/report validates a batch and writes it here as one row, in its transaction; Celery
    workers take rows in order, store their events (de-duplicated, as inline) and apply them,
    deleting the rows in the same transaction, so each event takes effect exactly once
    (apps.ingestion.assembly). One row instead of an event row and a queue row per event is
    what makes the request cheap: its body is written once (compressed with lz4, not PostgreSQL's
    slower default, migration 0017), and no index but the primary key's is touched.
    """

    received_at = models.DateTimeField()
    size = models.PositiveIntegerField(help_text="How many events the body holds.")
    # `app_pk:run_id` of every run the events name, one per line: what retention leaves alone.
    run_keys = models.TextField(blank=True, default="")
    # JSON: [[app pk, dedup key, payload], ...], as validated by the request.
    body = models.BinaryField()
    # Events queued before this table (migration 0017 moved them): already in tracing_event,
    # so each takes effect as new although storing it again finds it there.
    stored = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"queued batch {self.pk} ({self.size} events)"


class Event(models.Model):
    """One accepted event, kept as received. (app, dedup_key) makes redelivery a no-op."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    run_id = models.CharField(max_length=128, null=True, blank=True)
    name = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    dedup_key = models.CharField(max_length=64)
    payload = models.JSONField()

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "dedup_key"], name="event_dedup_per_app")]
        indexes = [
            models.Index(fields=["app", "run_id", "timestamp"], name="event_app_run"),
            # A new run looks here for a `saved` event that came before it: a few rows, not the events.
            models.Index(fields=["app", "run_id"], condition=models.Q(name="saved"), name="event_saved"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.run_id or ''}"


class Rating(models.TextChoices):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class Feedback(models.Model):
    """A user's rating of a run (`run_id`) or of a thread message (`message_id`).

    Targets are ids, not foreign keys: feedback may arrive before its run or message and
    is attached when they arrive. Feedback on a run shows on the message linked to that
    run, and feedback on a message counts for the message's run.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    run_id = models.CharField(max_length=128, null=True, blank=True)
    message_id = models.CharField(max_length=128, null=True, blank=True)
    rating = models.CharField(max_length=10, choices=Rating.choices)
    comment = models.TextField(blank=True, default="")
    # A score as another tool gave it (a Langfuse score: numeric, boolean or categorical);
    # `rating` is what it means as a thumb (docs/INTEROP.md).
    score_name = models.CharField(max_length=200, blank=True, default="")
    score_value = models.JSONField(null=True, blank=True)
    timestamp = models.DateTimeField()
    dedup_key = models.CharField(max_length=64)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "dedup_key"], name="feedback_dedup_per_app")]
        indexes = [
            models.Index(fields=["app", "run_id"], name="feedback_app_run", condition=Q(run_id__isnull=False)),
            models.Index(
                fields=["app", "message_id"], name="feedback_app_message", condition=Q(message_id__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating} on {self.run_id or self.message_id}"
