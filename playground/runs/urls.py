from django.urls import path

from playground.runs import poll, views, webhooks

urlpatterns = [
    path("", views.generate, name="generate"),
    path("runs/", views.history, name="history"),
    path("runs/<uuid:code>/", views.run_detail, name="run"),
    path("runs/<uuid:code>/status", poll.run_status, name="run_status"),
    path("runs/<uuid:code>/cancel", views.run_cancel, name="run_cancel"),
    path("runs/<uuid:code>/share", views.run_share, name="run_share"),
    path("runs/<uuid:code>/unshare", views.run_unshare, name="run_unshare"),
    path("runs/<uuid:code>/delete", views.run_delete, name="run_delete"),
    path("runs/<uuid:code>/result.mp4", views.run_result, name="run_result"),
    path("runs/<uuid:code>/poster.jpg", views.run_poster, name="run_poster"),
    path("references/", views.references, name="references"),
    path("references/<uuid:code>/delete", views.reference_delete, name="reference_delete"),
    path("references/<uuid:code>/video.mp4", views.reference_video, name="reference_video"),
    path("references/<uuid:code>/poster.jpg", views.reference_poster, name="reference_poster"),
    path("r/<str:token>", views.reference_download, name="reference_download"),
    path("s/<str:token>/", views.shared_run, name="shared"),
    path("s/<str:token>/result.mp4", views.shared_result, name="shared_result"),
    path("s/<str:token>/poster.jpg", views.shared_poster, name="shared_poster"),
    path("webhooks/aigateway", webhooks.gateway_webhook, name="webhook"),
]
