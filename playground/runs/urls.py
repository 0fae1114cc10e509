from django.urls import path

from playground.runs import poll, webhooks
from playground.runs.views import files, generate, history, library, runs, sharing

urlpatterns = [
    path("", generate.generate, name="generate"),
    path("runs/", history.history, name="history"),
    path("runs/<uuid:code>/", runs.run_detail, name="run"),
    path("runs/<uuid:code>/status", poll.run_status, name="run_status"),
    path("runs/<uuid:code>/cancel", runs.run_cancel, name="run_cancel"),
    path("runs/<uuid:code>/share", sharing.run_share, name="run_share"),
    path("runs/<uuid:code>/unshare", sharing.run_unshare, name="run_unshare"),
    path("runs/<uuid:code>/delete", runs.run_delete, name="run_delete"),
    path("runs/<uuid:code>/result.mp4", files.run_result, name="run_result"),
    path("runs/<uuid:code>/poster.jpg", files.run_poster, name="run_poster"),
    path("references/", library.references, name="references"),
    path("references/<uuid:code>/delete", library.reference_delete, name="reference_delete"),
    path("references/<uuid:code>/video.mp4", files.reference_video, name="reference_video"),
    path("references/<uuid:code>/poster.jpg", files.reference_poster, name="reference_poster"),
    path("r/<str:token>", files.reference_download, name="reference_download"),
    path("s/<str:token>/", sharing.shared_run, name="shared"),
    path("s/<str:token>/result.mp4", sharing.shared_result, name="shared_result"),
    path("s/<str:token>/poster.jpg", sharing.shared_poster, name="shared_poster"),
    path("webhooks/aigateway", webhooks.gateway_webhook, name="webhook"),
]
