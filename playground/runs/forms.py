"""The Generate form: the prompt, the settings, and a reference (new upload or existing)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django import forms
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict

from playground import kling
from playground.lib import video
from playground.runs.limits import refusal
from playground.runs.models import Reference
from playground.runs.money import cost_of_seconds
from playground.runs.references import ReferenceRejected, public_url_problem, store_upload

DURATIONS = [(n, f"{n} s") for n in kling.DURATIONS]


class ReferenceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Reference) -> str:
        return f"{obj.name} · {obj.facts}"


class GenerateForm(forms.Form):
    prompt = forms.CharField(
        label="Prompt",
        max_length=kling.PROMPT_MAX_CHARS,
        widget=forms.Textarea(
            attrs={
                "rows": 5,
                "maxlength": kling.PROMPT_MAX_CHARS,
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
        help_text=kling.reference_limits_text() + ".",
    )
    reference = ReferenceChoiceField(
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
        initial=kling.DEFAULT_DURATION,
        help_text="Seconds of output video.",
    )
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio", choices=kling.ASPECT_RATIOS, initial="auto"
    )
    keep_audio = forms.BooleanField(
        label="Keep audio",
        required=False,
        help_text="Keep the reference's soundtrack in the result.",
    )
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        cast(ReferenceChoiceField, self.fields["reference"]).queryset = Reference.objects.filter(
            user=user
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
        if upload and (upload.size or 0) > kling.REFERENCE_MAX_BYTES:
            raise forms.ValidationError(video.size_problem(upload.size or 0))
        return upload

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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
        duration = data.get("duration")
        if duration and (problem := refusal(self.user, cost_of_seconds(duration))):
            self.add_error(None, problem)
        if self.stored_reference is not None and self.errors:
            # Re-render with the stored reference picked, so the user needn't upload again.
            self.data = data_with = cast(QueryDict, self.data).copy()
            data_with["reference"] = str(self.stored_reference.code)
        return data
