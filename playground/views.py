from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers; also the hello-world baseline of bench/run.py."""
    return HttpResponse("ok", content_type="text/plain")
