from __future__ import annotations

from django.contrib import admin, messages
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from playground.accounts.models import Invite


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["email", "state", "created_by", "created_at", "expires_at", "used_by"]
    list_filter = ["created_at", "expires_at", "used_at"]
    search_fields = ["email", "used_by__username"]
    fields = ["email", "expires_at", "link", "created_by", "created_at", "used_by", "used_at"]
    readonly_fields = ["link", "created_by", "created_at", "used_by", "used_at"]
    list_select_related = ["created_by", "used_by"]

    @admin.display(description="Invite link")
    def link(self, invite: Invite) -> str:
        return invite.link() if invite.pk else "shown once the invite is saved"

    def save_model(self, request: HttpRequest, obj: Invite, form: ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: Invite, post_url_continue: str | None = None
    ) -> HttpResponse:
        expires = obj.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        self.message_user(
            request,
            f"Send {obj.email} this link (it works once, until {expires}): {obj.link()}",
            messages.SUCCESS,
        )
        return super().response_add(request, obj, post_url_continue)
