"""The header's context: the current app and the user's apps, as the page's view resolved them (no query here)."""


def header(request) -> dict:
    apps = getattr(request, "_user_apps", [])
    return {
        "current_app": getattr(request, "_page_app", None),
        "user_apps": apps,
        "many_orgs": len({app.organization_id for app in apps}) > 1,
    }
