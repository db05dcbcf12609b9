from rest_framework.routers import SimpleRouter

from apps.tenancy.api.views import AppViewSet

router = SimpleRouter(trailing_slash=True)
router.register("apps", AppViewSet, basename="app")
urlpatterns = router.urls
