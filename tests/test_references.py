"""The reference library: previews for phone codecs, reuse, deletion rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from playground.lib import media, video
from playground.runs.models import Reference, Run
from tests.builders import generate_data, served_bytes, stored_bytes, stored_names
from tests.videos import make_video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def hevc_video(tmp_path_factory):
    return make_video(
        tmp_path_factory.mktemp("hevc") / "phone.mov",
        codec="libx265",
        width=1280,
        height=720,
        seconds=3.2,
        audio=True,
    )


@pytest.fixture(scope="module")
def mpeg4_video(tmp_path_factory):
    return make_video(
        tmp_path_factory.mktemp("mpeg4") / "old.mp4",
        codec="mpeg4",
        width=960,
        height=720,
        seconds=3.2,
    )


@pytest.mark.parametrize("clip", ["hevc_video", "mpeg4_video"])
def test_it_makes_an_h264_preview_and_keeps_the_original(owner_client, request, clip):
    source = request.getfixturevalue(clip)
    response = owner_client.post(reverse("generate"), generate_data(source, prompt=""))
    assert response.status_code == 200  # the empty prompt fails; the upload is kept
    reference = Reference.objects.get()
    assert reference.needs_preview and reference.preview, "no preview was made"
    # The provider gets the original untouched.
    assert stored_bytes(reference.file.name) == source.read_bytes()
    with media.local_copy(reference.preview.name) as path:
        preview = video.probe(path)
    assert preview.codec == "h264" and preview.browser_playable
    assert abs(preview.duration - reference.duration) < 0.2
    served = owner_client.get(reverse("reference_video", args=[reference.code]))
    assert served_bytes(served) == stored_bytes(reference.preview.name)


def test_it_lists_references_with_their_facts(owner_client, good_video):
    owner_client.post(reverse("generate"), generate_data(good_video, prompt=""))
    page = owner_client.get(reverse("references")).content.decode()
    reference = Reference.objects.get()
    assert reference.name in page
    assert "960×720" in page and "3.5 s" in page and "24 fps" in page
    assert reverse("reference_poster", args=[reference.code]) in page


def test_it_keeps_a_reference_used_by_runs_and_says_so(owner_client, owner, good_video):
    owner_client.post(reverse("generate"), generate_data(good_video))
    run = Run.objects.get()
    reference = run.reference
    folder = f"references/{reference.code}"
    kept = stored_names(folder)
    response = owner_client.post(reverse("reference_delete", args=[reference.code]), follow=True)
    assert "used by 1 run" in response.content.decode()
    assert reference.file.name in kept and stored_names(folder) == kept
    assert Reference.objects.filter(pk=reference.pk).exists()

    run.status = "failed"
    run.save()
    owner_client.post(reverse("run_delete", args=[run.code]))
    owner_client.post(reverse("reference_delete", args=[reference.code]))
    assert not Reference.objects.exists()
    assert stored_names(folder) == []


def test_it_hides_other_users_references(owner_client, stranger_client, good_video):
    owner_client.post(reverse("generate"), generate_data(good_video, prompt=""))
    reference = Reference.objects.get()
    assert reference.name in owner_client.get(reverse("references")).content.decode()
    assert stranger_client.get(reverse("reference_video", args=[reference.code])).status_code == 404
    delete = stranger_client.post(reverse("reference_delete", args=[reference.code]))
    assert delete.status_code == 404
    assert Reference.objects.filter(pk=reference.pk).exists()
    assert reference.name not in stranger_client.get(reverse("references")).content.decode()
    # Nor can a stranger run a generation from it.
    response = stranger_client.post(
        reverse("generate"), generate_data(reference=str(reference.code))
    )
    assert response.status_code == 200 and not Run.objects.exists()
