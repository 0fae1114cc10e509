"""The Generate form: the prompt, the settings, and a reference (new upload or existing)."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from playground.lib import video
from playground.runs.models import ASPECT_RATIOS, Reference, Run
from playground.runs.money import cost_of_seconds, micros_from_usd, usd
from playground.runs.references import ReferenceRejected, public_url_problem, store_upload

DURATIONS = [(n, f"{n} s") for n in range(3, 11)]


class GenerateForm(forms.Form):
    prompt = forms.CharField(
        label="Prompt",
        max_length=2500,
        widget=forms.Textarea(
            attrs={
                "rows": 5,
                "maxlength": 2500,
                "placeholder": "Describe the new shot. Cite the reference "
                "as @Video1, e.g. “@Video1 at golden hour, warm light”.",
            }
        ),
        error_messages={"required": "Write a prompt: it describes the shot to generate."},
    )
    reference_video = forms.FileField(
        label="Reference video",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "video/mp4,video/quicktime,.mp4,.mov"}),
        help_text="MP4 or MOV, 3–10 s, 720–2160 px, 24–60 fps, up to 200 MB.",
    )
    reference = forms.ModelChoiceField(
        label="Or use a reference you uploaded before",
        queryset=Reference.objects.none(),
        required=False,
        to_field_name="code",
        empty_label="— upload a new one —",
    )
    duration = forms.TypedChoiceField(
        label="Duration",
        choices=DURATIONS,
        coerce=int,
        initial=5,
        help_text="Seconds of output video.",
    )
    aspect_ratio = forms.ChoiceField(label="Aspect ratio", choices=ASPECT_RATIOS, initial="auto")
    keep_audio = forms.BooleanField(
        label="Keep audio",
        required=False,
        help_text="Keep the reference's soundtrack in the result.",
    )
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: object, user: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.user = user
        self.fields["reference"].queryset = Reference.objects.filter(user=user)
        self.fields["reference"].label_from_instance = lambda ref: (
            f"{ref.name} · {ref.duration:.1f} s · {ref.resolution} · {ref.fps:g} fps"
        )
        if not self.is_bound:
            self.initial["idempotency_key"] = uuid.uuid4()
        self.stored_reference: Reference | None = None

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if not prompt:
            raise forms.ValidationError("Write a prompt: it describes the shot to generate.")
        return prompt

    def clean_reference_video(self) -> UploadedFile | None:
        upload = self.cleaned_data.get("reference_video")
        if upload and upload.size > video.MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is 200 MB."
            )
        return upload

    def clean(self) -> dict:
        data = super().clean()
        if problem := public_url_problem():
            raise forms.ValidationError(problem)
        upload, chosen = data.get("reference_video"), data.get("reference")
        if upload:
            # Keep a valid upload even if another field fails, so it is never sent twice.
            try:
                self.stored_reference = store_upload(self.user, upload)
            except ReferenceRejected as exc:
                self.add_error("reference_video", str(exc))
        elif chosen:
            self.stored_reference = chosen
        elif "reference_video" not in self.errors:
            self.add_error("reference_video", "Choose a reference video to guide the shot.")
        try:
            self._check_limits(data)
        except forms.ValidationError as exc:
            self.add_error(None, exc)
        if self.stored_reference is not None and self.errors:
            # Re-render with the stored reference picked, so the user needn't upload again.
            self.data = self.data.copy()
            self.data["reference"] = str(self.stored_reference.code)
        return data

    def _check_limits(self, data: dict) -> None:
        cap = settings.MAX_INFLIGHT_RUNS_PER_USER
        if cap and Run.objects.for_user(self.user).in_flight().count() >= cap:
            raise forms.ValidationError(
                f"You already have {cap} runs in progress, the most allowed at once. "
                "Wait for one to finish or cancel one."
            )
        left = budget_left_micros(self.user)
        duration = data.get("duration")
        if left is not None and duration and cost_of_seconds(duration) > left:
            raise forms.ValidationError(
                f"This run would cost {usd(cost_of_seconds(duration))}, but only {usd(left)} "
                "of this month's budget is left."
            )


def budget_left_micros(user: object) -> int | None:
    """What is left of the monthly budget (None when there is no budget)."""
    if not settings.MONTHLY_BUDGET_USD:
        return None
    budget = micros_from_usd(settings.MONTHLY_BUDGET_USD)
    spent = Run.objects.for_user(user).this_month().committed_micros()
    return max(0, budget - spent)
