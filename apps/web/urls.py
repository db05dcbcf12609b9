from django.urls import path

from apps.web.views import analytics, calls, runs, settings, threads

urlpatterns = [
    path("", calls.llm_calls, name="calls"),
    path("runs/<str:run_id>/", runs.run_page, name="run"),
    path("runs/<str:run_id>/span/<str:span_id>/", runs.span, name="run-span"),
    path("runs/<str:run_id>/subtree/<str:span_id>/", runs.subtree, name="run-subtree"),
    path("runs/<str:run_id>/save/", runs.save, name="run-save"),
    path("runs/<str:run_id>/compare/", runs.compare, name="run-compare"),
    path("threads/", threads.thread_list, name="threads"),
    path("analytics/", analytics.analytics_page, name="analytics"),
    path("threads/<int:pk>/", threads.thread_page, name="thread"),
    path("settings/", settings.settings_page, name="settings"),
    path("settings/apps/<uuid:app_id>/", settings.edit_app, name="settings-app"),
    path("settings/keys/", settings.create_key, name="settings-key-create"),
    path("settings/keys/<int:pk>/revoke/", settings.revoke_key, name="settings-key-revoke"),
    path("settings/members/", settings.add_member, name="settings-member-add"),
]
