"""Observatory settings: one file, every environment configured by environment variables.

The README lists every variable. Helpers in `observatory.env` refuse malformed values.
"""

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from observatory.env import env_bool, env_choice, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "django-insecure-local-development-only"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if not DEBUG else ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "apps.tenancy",
    "apps.costs",
    "apps.tracing",
    "apps.threads",
    "apps.analytics",
    "apps.interop",
    "apps.ingestion",
    "apps.web",
]

MIDDLEWARE = [
    "observatory.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "observatory.middleware.DatabaseUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers a locked-out login
]

ROOT_URLCONF = "observatory.urls"
WSGI_APPLICATION = "observatory.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.web.context.header",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
# Default: an embedded SQLite file, so `make run` needs nothing installed.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'observatory.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE transactions take the write lock up front, so two concurrent ingestion
    # requests queue on the busy timeout instead of failing a read->write upgrade;
    # WAL lets page reads proceed while a batch is being written.
    # Tests use a file too (not the in-memory default), so that threads in concurrency
    # tests meet SQLite's real locking instead of shared-cache table locks.
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}-test"}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Parameters travel apart from the SQL (psycopg's binary dumpers) instead of being
    # quoted into it in Python: ingestion batches carry thousands of values per statement.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and cache -----------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "observatory.cache.PooledClientRedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    # Embedded mode: one process, so a local-memory cache and in-process tasks are enough.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker process dies (killed, out of memory) goes back to the queue at once, not
# acknowledged and lost; every task is safe to run again (docs/OPERATIONS.md, "Faults").
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task taken by a worker that vanished whole (SIGKILL, machine lost) is delivered again this
# many seconds after it was taken. Longer than the longest task would be the textbook rule, but
# a task redelivered while it still runs finds its work claimed and does nothing.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("OBSERVATORY_TASK_REDELIVERY_SECONDS", 3600, minimum=1),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}
CELERY_TIMEZONE = "UTC"
# The beat schedule is in observatory/celery.py.

# --- Auth, i18n, static --------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"

# Login brute force (django-axes, in the database so every web process counts together): a user
# name that fails LOGIN_FAILURE_LIMIT times from one address is refused from there for
# LOGIN_LOCKOUT_MINUTES (a 429), however right the next password. Counting the pair, not the name
# alone, keeps an attacker from locking someone else out; a success starts the count again.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "observatory.security.client_ip"
LOGIN_REDIRECT_URL = "calls"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed but not hashed: pages render the same before and after `collectstatic`.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the source directories too, so a checkout works before `collectstatic`.
WHITENOISE_USE_FINDERS = True

# Content Security Policy (django-csp): only our own static files run or style the pages, so an
# LLM's output that escaped its escaping still could not load or run anything. Inline `style`
# attributes stay allowed (style-src-attr): the trace's waterfall and the analytics bars set
# positions and widths there, from numbers computed here; they cannot run script. docs/SECURITY.md.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
# Behind TLS, plain HTTP is redirected to HTTPS, but not the probes: load balancers and Prometheus
# call /healthz and /metrics over plain HTTP inside the network.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Off unless set: browsers remember it, so turn it on once HTTPS works (README, "Production").
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
# Subdomains of the server's own host (obs.example.com covers *.obs.example.com, not example.com).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The preload list is for domains submitted to the browsers' list, which a self-hosted tool on a
# company's subdomain is not: not asking for it is the decision, not an oversight.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenancy.authentication.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "observatory.renderers.ORJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.tenancy.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Observatory API",
    "DESCRIPTION": "Event ingestion and the runs, traces and threads of LLM applications.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN: self-hosted servers may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.tracing.models.Status",
        "EndStatusEnum": [("success", "success"), ("error", "error")],
    },
}

# --- Observatory -------------------------------------------------------------------------
# Ingestion limits (see README): body bytes after decompression, events per batch,
# requests per key per minute (0 = unlimited), bytes of one event, JSON nesting depth.
OBSERVATORY_MAX_BODY_BYTES = env_int("OBSERVATORY_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
OBSERVATORY_MAX_BATCH_EVENTS = env_int("OBSERVATORY_MAX_BATCH_EVENTS", 1000, minimum=1)
OBSERVATORY_RATE_LIMIT_PER_MINUTE = env_int("OBSERVATORY_RATE_LIMIT_PER_MINUTE", 60000, minimum=0)
OBSERVATORY_MAX_EVENT_BYTES = env_int("OBSERVATORY_MAX_EVENT_BYTES", 1024 * 1024, minimum=1024)
OBSERVATORY_MAX_JSON_DEPTH = env_int("OBSERVATORY_MAX_JSON_DEPTH", 64, minimum=4)
# Django refuses bodies over this before the view can answer 413 itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = OBSERVATORY_MAX_BODY_BYTES + 1
# Seconds a client is told to wait on 429/503.
OBSERVATORY_RETRY_AFTER_S = env_int("OBSERVATORY_RETRY_AFTER_S", 5, minimum=1)
# Where reported events take effect: "inline", in the /api/report request itself, or
# "worker": the request stores and queues them and Celery workers apply them in batches
# (needs REDIS_URL and a running worker; docs/INGESTION.md says when to choose which).
# The default is "worker" with REDIS_URL (production: the web tier only accepts), else "inline".
OBSERVATORY_ASSEMBLY = env_choice("OBSERVATORY_ASSEMBLY", "worker" if REDIS_URL else "inline", ["inline", "worker"])
if OBSERVATORY_ASSEMBLY == "worker" and not REDIS_URL:
    raise ImproperlyConfigured("OBSERVATORY_ASSEMBLY=worker needs REDIS_URL (a broker for the workers)")
# Seconds an API key's lookup is cached (Redis only: a key's revocation must reach every
# process at once, which a process-local cache cannot promise). 0 = look it up every request.
OBSERVATORY_API_KEY_CACHE_SECONDS = env_int("OBSERVATORY_API_KEY_CACHE_SECONDS", 60 if REDIS_URL else 0, minimum=0)
# When set, /metrics answers only `Authorization: Bearer <this>` (docs/OPERATIONS.md).
OBSERVATORY_METRICS_TOKEN = env_str("OBSERVATORY_METRICS_TOKEN", "")
# Events a worker applies per transaction.
OBSERVATORY_ASSEMBLY_BATCH = env_int("OBSERVATORY_ASSEMBLY_BATCH", 2000, minimum=1)
# Seconds one assembly task applies the queue before it hands the rest to a new task, at the back
# of the queue, so that purges and recalculations get a worker under a steady backlog.
OBSERVATORY_ASSEMBLY_TASK_SECONDS = env_int("OBSERVATORY_ASSEMBLY_TASK_SECONDS", 30, minimum=0)
# How many characters of a run's input and of its output the runs search looks through.
OBSERVATORY_SEARCH_CHARS_PER_FIELD = env_int("OBSERVATORY_SEARCH_CHARS_PER_FIELD", 2000, minimum=0)
# PostgreSQL's work_mem (MB) for an analytics request's queries, so that the sorts and hash tables of
# a month of runs stay in memory (docs/ANALYTICS.md); 0 = the server's own setting.
OBSERVATORY_ANALYTICS_WORK_MEM_MB = env_int("OBSERVATORY_ANALYTICS_WORK_MEM_MB", 64, minimum=0)
# Cost recalculation: run ids per chunk (one transaction each), and the seconds without a chunk
# committed after which its worker is presumed dead and another resumes the job (docs/COSTS.md).
OBSERVATORY_RECALC_CHUNK = env_int("OBSERVATORY_RECALC_CHUNK", 100_000, minimum=1)
OBSERVATORY_RECALC_STALE_SECONDS = env_int("OBSERVATORY_RECALC_STALE_SECONDS", 300, minimum=1)
# Retention for new apps, in days; 0 = keep forever.
OBSERVATORY_DEFAULT_RETENTION_DAYS = env_int("OBSERVATORY_DEFAULT_RETENTION_DAYS", 30, minimum=0)
# Runs (or events) the retention job deletes per transaction: bounds how long their rows stay
# locked, and how many advisory locks one transaction holds in PostgreSQL's shared lock table.
OBSERVATORY_RETENTION_BATCH = env_int("OBSERVATORY_RETENTION_BATCH", 2000, minimum=1)
# The hour (UTC, 0-23) at which Celery beat starts the daily retention job (docs/RETENTION.md).
OBSERVATORY_RETENTION_HOUR = env_int("OBSERVATORY_RETENTION_HOUR", 3, minimum=0)
if OBSERVATORY_RETENTION_HOUR > 23:
    raise ImproperlyConfigured(f"OBSERVATORY_RETENTION_HOUR={OBSERVATORY_RETENTION_HOUR} must be at most 23")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
