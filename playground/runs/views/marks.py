"""The owner's marks on a run, edited in place: a star and a short private note.

With htmx each answers its own small partial (the same one the history rows and the run
page show); without JS the form posts and comes back to the page it was on."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from playground.lib.requests import AuthenticatedRequest
from playground.runs.history import NoteForm, safe_next, wanted_star
from playground.runs.views.access import get_run

MARKS = "runs/history_marks.html"


@require_POST
@vary_on_headers("HX-Request")
def run_star(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    run.set_starred(wanted_star(request.POST.get("starred"), run.starred))
    back = safe_next(request, request.POST.get("next"), run.get_absolute_url())
    if request.htmx:
        return render(request, f"{MARKS}#star", {"run": run, "next": back})
    return redirect(back)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def run_note(request: AuthenticatedRequest, code: str) -> HttpResponse:
    """GET: the note's form, to edit it in place of a list's note (htmx; without JS the
    list links to the run's page, which has the form). POST: save it."""
    run = get_run(request, code)
    if request.method == "GET":
        if not request.htmx:
            return redirect(f"{run.get_absolute_url()}#marks")
        back = safe_next(request, request.htmx.current_url, reverse("history"))
        return render(request, f"{MARKS}#note-form", {"run": run, "next": back, "in_list": True})
    form = NoteForm(request.POST)
    if form.is_valid():
        run.set_note(form.cleaned_data["note"])
    back = safe_next(request, request.POST.get("next"), run.get_absolute_url())
    if request.htmx:
        in_list = bool(request.POST.get("in_list"))
        if form.is_valid() and in_list:  # back to the note as text in its row
            return render(request, f"{MARKS}#note", {"run": run})
        # Saved, or too long: the form again, with what was typed and why at the field.
        context = {"run": run, "next": back, "note_form": form, "in_list": in_list}
        return render(request, f"{MARKS}#note-form", context)
    if form.is_valid():
        messages.info(request, "Note saved." if run.note else "Note removed.")
    else:
        messages.error(request, str(form.errors["note"][0]))
    return redirect(back)
