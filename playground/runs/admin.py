from __future__ import annotations

from django.contrib import admin

from playground.runs.models import Reference, Run, Tracker, TrackerLease, WebhookEvent
from playground.runs.money import usd


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "user",
        "status",
        "provider_job_id",
        "duration",
        "estimated",
        "billed",
        "cost_source",
        "simulated",
        "created_at",
        "submitted_at",
        "finished_at",
        "provider_requests",
    ]
    list_filter = [
        "status",
        "simulated",
        "billing_unknown",
        "cost_source",
        "aspect_ratio",
        "cancel_requested",
        "created_at",
        "user",
    ]
    search_fields = ["code", "provider_job_id", "prompt", "user__username"]
    readonly_fields = [
        "code",
        "idempotency_key",
        "created_at",
        "submitted_at",
        "provider_completed_at",
        "finished_at",
        "provider_requests",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["user"]

    @admin.display(description="Estimated", ordering="estimated_cost_micros")
    def estimated(self, run: Run) -> str:
        return usd(run.estimated_cost_micros)

    @admin.display(description="Billed", ordering="billed_cost_micros")
    def billed(self, run: Run) -> str:
        return usd(run.billed_cost_micros)


@admin.register(Reference)
class ReferenceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "user",
        "codec",
        "width",
        "height",
        "fps",
        "duration",
        "size",
        "created_at",
    ]
    list_filter = ["codec", "user"]
    search_fields = ["name", "code"]


admin.site.register(TrackerLease)


@admin.register(Tracker)
class TrackerAdmin(admin.ModelAdmin):
    """Which workers are tracking, since when, and how much each has done."""

    list_display = ("holder", "started_at", "seen_at", "stopped_at", "steps")
    readonly_fields = ("holder", "started_at", "seen_at", "stopped_at", "steps")


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "job_id", "received_at"]
    search_fields = ["event_id", "job_id"]
