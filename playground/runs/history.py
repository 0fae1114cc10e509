"""Finding runs in the history: the filter form and the query it builds; the owner's marks
(a star, a short note) on a run."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.http import HttpRequest
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from playground.runs.models import ACTIVE, RunQuerySet, Status

PER_PAGE = 25
# Each word of a search must appear in the prompt; a few are plenty for a prompt search.
MAX_WORDS = 8

STATUS_FILTERS = [
    ("", "Any status"),
    ("active", "In progress"),
    (Status.COMPLETED, "Completed"),
    (Status.FAILED, "Failed"),
    (Status.CANCELLED, "Cancelled"),
    (Status.TIMED_OUT, "Timed out"),
]


class DateInput(forms.DateInput):
    input_type = "date"


class HistoryFilter(forms.Form):
    """The history's filters, from the query string (so a filtered page is a shareable URL).

    A field that does not validate says why at the field and filters nothing; the others
    still apply."""

    q = forms.CharField(
        label="Search prompts",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Words in the prompt"}),
    )
    status = forms.ChoiceField(label="Status", choices=STATUS_FILTERS, required=False)
    starred = forms.BooleanField(label="Starred only", required=False)
    since = forms.DateField(label="From", required=False, widget=DateInput)
    until = forms.DateField(label="To", required=False, widget=DateInput)

    def clean(self) -> dict:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        for name, day in (("since", since), ("until", until)):
            if day is not None and not (date.min < day < date.max):
                # The last day has no "next day" to bound it (and the first no day before).
                self.add_error(name, "Pick a date between year 1 and 9999.")
                since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    @property
    def valid_data(self) -> dict:
        """The fields that validated (all of them, for a valid form)."""
        if not self.is_bound:
            return {}
        self.is_valid()  # cleans the form once; invalid fields are left out of cleaned_data
        return self.cleaned_data

    @property
    def is_filtering(self) -> bool:
        return any(self.valid_data.get(name) for name in self.fields)

    def apply(self, runs: RunQuerySet) -> RunQuerySet:
        """`runs` narrowed by every filter that validated."""
        data = self.valid_data
        for word in (data.get("q") or "").split()[:MAX_WORDS]:
            runs = runs.filter(prompt__icontains=word)
        status = data.get("status")
        if status == "active":
            runs = runs.filter(status__in=ACTIVE)
        elif status:
            runs = runs.filter(status=status)
        if data.get("starred"):
            runs = runs.filter(starred=True)
        # Whole days in the user's time zone, as bounds on the indexed column (not a
        # per-row date conversion in SQL).
        if since := data.get("since"):
            runs = runs.filter(created_at__gte=start_of(since))
        if until := data.get("until"):
            runs = runs.filter(created_at__lt=start_of(until + timedelta(days=1)))
        return runs


def start_of(day: date) -> datetime:
    """Midnight at the start of `day` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


class NoteForm(forms.Form):
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=500,  # Run.note's length
        error_messages={"max_length": "A note holds at most %(limit_value)d characters."},
    )


def wanted_star(value: str | None, current: bool) -> bool:
    """The star the form asks for: the explicit value it carries ("1"/"0"), so a replayed
    request changes nothing more; without one, the opposite of now."""
    if value in ("1", "0"):
        return value == "1"
    return not current


def safe_next(request: HttpRequest, url: str | None, default: str) -> str:
    """Where a form asks to go back to, if it is a page of this site; else `default`."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return default
