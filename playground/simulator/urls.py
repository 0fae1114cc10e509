from django.contrib.auth.decorators import login_not_required
from django.urls import path

from playground.simulator import views

# The simulator stands in for a remote service: no session login, like the real gateway.
app_name = "simulator"
urlpatterns = [
    path("v1/videos/generations", login_not_required(views.create_generation), name="create"),
    path("v1/jobs/<str:job_id>", login_not_required(views.job_detail), name="job"),
    path("v1/jobs/<str:job_id>/cancel", login_not_required(views.cancel_job), name="cancel"),
    path("files/<str:job_id>.mp4", login_not_required(views.result_file), name="result"),
]
