from django.urls import path

from apps.tenancy import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
]
