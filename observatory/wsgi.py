"""WSGI entry point (gunicorn observatory.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")
application = get_wsgi_application()

# Django, DRF and the apps are loaded now and live as long as the process: move them out of
# the collector's reach, so that a full collection during a request (building a 500-span
# trace allocates enough to trigger several) scans that request's objects, not ~85,000
# long-lived ones. Measured: the p90 of loading a 500-span trace went from 63 to 48 ms.
gc.collect()
gc.freeze()
