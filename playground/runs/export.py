"""A run's prompt and settings as the AIgateway request that makes it: a JSON body and a
ready `curl` command, to take an experiment out of the playground into a script.

The API key is written as `$AIGATEWAY_API_KEY`, never the real one: the page that shows
the command is not a place for secrets. The reference URLs are signed and expire
(REFERENCE_URL_MAX_AGE_SECONDS), like the ones the tracker sends.
"""

from __future__ import annotations

import json
import shlex

from django.conf import settings

from playground.gateway.client import GENERATIONS_PATH, job_body
from playground.kling import MODEL_ID
from playground.runs.models import Run
from playground.runs.references import signed_reference_url

KEY_VARIABLE = "$AIGATEWAY_API_KEY"


def request_body(run: Run) -> dict[str, object]:
    return job_body(
        model=MODEL_ID,
        prompt=run.prompt,
        duration=run.duration,
        aspect_ratio=run.aspect_ratio,
        video_url=signed_reference_url(run.reference) if run.reference else "",
        keep_audio=run.keep_audio,
        image_urls=[signed_reference_url(item.reference) for item in run.run_images.all()],
    )


def as_json(run: Run) -> str:
    return json.dumps(request_body(run), indent=2, ensure_ascii=False)


def as_curl(run: Run) -> str:
    base = (
        settings.AIGATEWAY_PUBLIC_URL if settings.SIMULATOR_ENABLED else settings.AIGATEWAY_BASE_URL
    )
    # The key stays a shell variable: double quotes let the shell expand it; the body is
    # single-quoted by shlex so nothing in a prompt ($, `, quotes) is ever run.
    return "\n".join(
        [
            f"curl -X POST {shlex.quote(base + GENERATIONS_PATH)} \\",
            f'  -H "Authorization: Bearer {KEY_VARIABLE}" \\',
            "  -H 'Content-Type: application/json' \\",
            f"  -d {shlex.quote(json.dumps(request_body(run), ensure_ascii=False))}",
        ]
    )
