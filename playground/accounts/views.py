from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from playground.accounts.models import Invite, InviteUnusable


def _invite_refused(request: HttpRequest, invite: Invite | None) -> HttpResponse:
    if invite is None:
        problem = "This invite link is not valid. Check that you copied all of it."
    else:
        problem = invite.problem or "This invite can no longer be used."
    return render(
        request,
        "registration/invite_refused.html",
        {"problem": problem},
        status=404 if invite is None else 410,
    )


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    # An invite opens sign-up for one person even when it is closed. The form posts back
    # to this same URL, query string included, so the token comes with the POST too.
    token = request.GET.get("invite", "")
    if not token and not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is closed on this instance; ask an admin for an account.")
    if request.user.is_authenticated:
        return redirect("generate")
    invite = Invite.objects.filter(token=token).first() if token else None
    if token and (invite is None or invite.problem):
        return _invite_refused(request, invite)
    form: UserCreationForm[User] = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if invite is None:
            user = form.save()
        else:
            try:
                user = invite.accept(form)
            except InviteUnusable:  # used by a parallel sign-up since the check above
                invite.refresh_from_db()
                return _invite_refused(request, invite)
        # Two backends are configured (django-axes, then Django's): say which one this is.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("generate")
    return render(request, "registration/signup.html", {"form": form, "invite": invite})
