from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from playground.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("playground.accounts.urls")),
    path("", include("playground.runs.urls")),
]
if settings.SIMULATOR_ENABLED:
    urlpatterns.append(path("sim/", include("playground.simulator.urls")))
