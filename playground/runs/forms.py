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
from playground.lib.requests import is_uuid
from playground.runs import batches
from playground.runs.images import ImageRejected, citation_problem, store_image
from playground.runs.limits import refusal
from playground.runs.models import Reference, ReferenceKind, Run
from playground.runs.references import (
    ReferenceNeedsFix,
    ReferenceRejected,
    public_url_problem,
    store_upload,
)

DURATIONS = [(n, f"{n} s") for n in kling.DURATIONS]
IMAGE_PICKER_SIZE = 24
# What the reference's file picker offers: what the model takes, and what "Fix it"
# converts (Matroska/WebM from screen recorders and Android, AVI, camcorders' MPEG-TS).
REFERENCE_TYPES = ["video/mp4", "video/quicktime", "video/webm", "video/x-matroska"]
REFERENCE_TYPES += ["video/avi", "video/mp2t"]
REFERENCE_SUFFIXES = [".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".mts", ".m2ts"]
REFERENCE_ACCEPT = ",".join(REFERENCE_TYPES + REFERENCE_SUFFIXES)


class ReferenceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Reference) -> str:
        return f"{obj.name} · {obj.facts}"


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name (Django's documented recipe): a list, maybe empty."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        one = super().clean
        if isinstance(data, list | tuple):
            return [one(item, initial) for item in data if item]
        return [one(data, initial)] if data else []


class TextBoxField(forms.CharField):
    """A textarea's text with its line breaks as the page counted them: browsers send each
    as CR LF but count it (and `maxlength` limits it) as one character."""

    def to_python(self, value: object) -> str | None:
        text = super().to_python(value)
        return text.replace("\r\n", "\n").replace("\r", "\n") if text else text


class ImageChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Reference) -> str:
        return f"{obj.name} · {obj.resolution}"


class GenerateForm(forms.Form):
    prompt = TextBoxField(
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
        # The formats "Fix it" converts too, so a phone's picker doesn't hide them.
        widget=forms.ClearableFileInput(attrs={"accept": REFERENCE_ACCEPT}),
        help_text=kling.reference_limits_text() + ".",
    )
    reference = ReferenceChoiceField(
        label="Or use a reference you uploaded before",
        queryset=Reference.objects.none(),
        required=False,
        to_field_name="code",
        empty_label="— upload a new one —",
    )
    reference_images = MultipleFileField(
        label="Reference images",
        required=False,
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png"}),
        help_text=f"Optional; cite them in the prompt as @Image1 … @Image{kling.IMAGE_MAX_COUNT}. "
        f"{kling.image_limits_text()}.",
    )
    images = ImageChoiceField(
        label="Or pick images you uploaded before",
        queryset=Reference.objects.none(),
        required=False,
        to_field_name="code",
        widget=forms.CheckboxSelectMultiple,
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
    # Fanning out: each line of Variants is one more prompt; each extra duration and each
    # repeat multiplies the runs (see runs/batches.py). All optional.
    variants = TextBoxField(
        label="Variants",
        required=False,
        # Room for the most variants a press makes, each at the longest prompt.
        max_length=batches.MAX_BATCH_RUNS * (kling.PROMPT_MAX_CHARS + 1),
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "One more prompt per line; each line is a run of its own.",
            }
        ),
        help_text="One prompt per line, each run against the same reference and settings.",
    )
    more_durations = forms.TypedMultipleChoiceField(
        label="Also at",
        choices=DURATIONS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every prompt is also run at each duration ticked here.",
    )
    repeat = forms.TypedChoiceField(
        label="Runs of each",
        choices=[(n, f"× {n}") for n in range(1, batches.MAX_REPEAT + 1)],
        coerce=int,
        initial=1,
        required=False,
        empty_value=1,  # type: ignore[arg-type]  # an int is what coerce makes of the rest
        help_text="The model is not deterministic: the same prompt twice makes two shots.",
    )
    # "Remix": the run the form was filled from; the new run remembers it.
    parent = forms.UUIDField(required=False, widget=forms.HiddenInput)
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        mine = Reference.objects.filter(user=user)
        # Only videos the model takes: one with problems is kept only so it can be fixed.
        cast(ReferenceChoiceField, self.fields["reference"]).queryset = mine.filter(
            kind=ReferenceKind.VIDEO, problems=""
        )
        self.image_choices = mine.filter(kind=ReferenceKind.IMAGE)
        cast(ImageChoiceField, self.fields["images"]).queryset = self.image_choices
        # @Image1 … in order: library picks as chosen, then uploads as uploaded (see clean).
        self.stored_images: list[Reference] = []
        self.attached_images = 0
        if not self.is_bound:
            self.initial["idempotency_key"] = uuid.uuid4()
        self.stored_reference: Reference | None = None
        # An upload kept with problems: its error offers "Fix it" (runs/fixes.py).
        self.fix_reference: Reference | None = None
        self.planned: list[batches.Variant] = []
        self.parent_run: Run | None = None
        if not self.is_bound and (code := self.initial.get("parent")):
            self.parent_run = Run.objects.filter(code=code, user=user).first()

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if not prompt:
            raise forms.ValidationError("Write a prompt: it describes the shot to generate.")
        return prompt

    def clean_variants(self) -> list[str]:
        # An empty box (or one of blank lines) adds no runs: never a run without a prompt.
        prompts = batches.variant_prompts(self.cleaned_data.get("variants", ""))
        if len(prompts) >= batches.MAX_BATCH_RUNS:
            raise forms.ValidationError(
                f"That is {len(prompts)} variants; one press of Generate makes at most "
                f"{batches.MAX_BATCH_RUNS} runs, the prompt above included."
            )
        for number, prompt in enumerate(prompts, start=1):
            if len(prompt) > kling.PROMPT_MAX_CHARS:
                raise forms.ValidationError(
                    f"Variant {number} has {len(prompt):,} characters; a prompt may have "
                    f"at most {kling.PROMPT_MAX_CHARS:,}."
                )
        return prompts

    def clean_parent(self) -> uuid.UUID | None:
        code = self.cleaned_data.get("parent")
        if code:
            # Only the user's own runs: anyone else's is silently no parent at all.
            self.parent_run = Run.objects.visible().filter(code=code, user=self.user).first()
        return code

    def _plan(self) -> list[batches.Variant]:
        """The runs this form asks for: prompts × durations × repeats."""
        data = self.cleaned_data
        prompts = [data["prompt"], *data.get("variants", [])] if data.get("prompt") else []
        durations = sorted({data["duration"], *data.get("more_durations", [])})
        return batches.plan(prompts, durations, data.get("repeat") or 1)

    def _run_count(self) -> int:
        """How many runs the form asks for, counted without making them (a hostile form
        could ask for millions)."""
        data = self.cleaned_data
        prompts = 1 + len(data.get("variants", []))
        durations = len({data["duration"], *data.get("more_durations", [])})
        return prompts * durations * (data.get("repeat") or 1)

    def _clean_images(self) -> None:
        """@Image1 … in order: the library picks as chosen, then the uploads as uploaded.
        A valid upload is kept even if another field fails (the form comes back with it
        picked), so it is never uploaded twice; nothing is stored from a form with too many."""
        by_code = {str(image.code): image for image in self.cleaned_data.get("images") or []}
        picks = [by_code[code] for code in dict.fromkeys(self._picked_codes()) if code in by_code]
        uploads = self.cleaned_data.get("reference_images") or []
        self.attached_images = len(picks) + len(uploads)
        self.stored_images = picks
        if self.attached_images > kling.IMAGE_MAX_COUNT:
            self.add_error(
                "reference_images",
                f"A run takes at most {kling.IMAGE_MAX_COUNT} images; you attached "
                f"{self.attached_images}.",
            )
            return
        for upload in uploads:
            try:
                self.stored_images.append(store_image(self.user, upload))
            except ImageRejected as exc:
                self.add_error("reference_images", str(exc))

    def _picked_codes(self) -> list[str]:
        """The library images ticked, in the order the form sent them."""
        name = self.add_prefix("images")
        if not self.is_bound:
            return [str(code) for code in self.initial.get("images") or []]
        if isinstance(self.data, QueryDict):
            return self.data.getlist(name)
        value = self.data.get(name) or []
        return [value] if isinstance(value, str) else [str(code) for code in value]

    @property
    def image_library(self) -> list[tuple[Reference, int | None]]:
        """The picker's entries: (image, its @Image number or None). The chosen come first,
        in their order, so that a form sent again keeps @Image1 … as they were."""
        chosen = [str(image.code) for image in self.stored_images] or self._picked_codes()
        position = {code: n for n, code in enumerate(dict.fromkeys(chosen), start=1)}
        # The chosen and then the newest, IMAGE_PICKER_SIZE in all: a long library would
        # make the page heavy, and the rest are on References.
        newest = list(self.image_choices[:IMAGE_PICKER_SIZE])
        shown = {str(image.code) for image in newest}
        missing = [code for code in position if code not in shown and is_uuid(code)]
        library = list(self.image_choices.filter(code__in=missing)) + newest
        library.sort(key=lambda image: position.get(str(image.code), len(position) + 1))
        return [(image, position.get(str(image.code))) for image in library[:IMAGE_PICKER_SIZE]]

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
            except ReferenceNeedsFix as exc:
                self.fix_reference = exc.reference
                self.add_error("reference_video", str(exc))
            except ReferenceRejected as exc:
                self.add_error("reference_video", str(exc))
        elif chosen:
            self.stored_reference = chosen
        elif "reference_video" not in self.errors:
            self.add_error("reference_video", "Choose a reference video to guide the shot.")
        self._clean_images()
        if data.get("duration") and data.get("prompt"):
            if (count := self._run_count()) > batches.MAX_BATCH_RUNS:
                self.add_error(
                    "variants",
                    f"That makes {count} runs; one press of Generate makes at "
                    f"most {batches.MAX_BATCH_RUNS}. Drop some variants, durations or repeats.",
                )
            else:
                self.planned = self._plan()
                cost = batches.estimated_micros(self.planned)
                if problem := refusal(self.user, cost, runs=len(self.planned)):
                    self.add_error(None, problem)
        # Checked after the plan (an error drops the prompt from cleaned_data).
        for field in ("prompt", "variants"):
            texts = data.get(field) or []
            for text in [texts] if isinstance(texts, str) else texts:
                if problem := citation_problem(text, self.attached_images):
                    self.add_error(field, problem)
                    break
        if self.stored_reference is not None and self.errors:
            # Re-render with the stored reference picked, so the user needn't upload again.
            self.data = data_with = cast(QueryDict, self.data).copy()
            data_with["reference"] = str(self.stored_reference.code)
        return data
