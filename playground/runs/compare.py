"""What the compare page shows: each run's prompt diffed word by word against the first
run's, and the settings side by side with the ones that differ marked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from playground.lib.worddiff import Piece, word_diff
from playground.runs.models import Reference, Run
from playground.runs.money import usd

MIN_COMPARED, MAX_COMPARED = 2, 4

# The settings row by row: a label and how to read it off a run.
SETTINGS: list[tuple[str, Callable[[Run], str]]] = [
    ("Reference", lambda run: run.reference.name if run.reference else "—"),
    (
        "Images",
        lambda run: ", ".join(ri.reference.name for ri in run.run_images.all()) or "none",
    ),
    ("Duration", lambda run: f"{run.duration} s"),
    ("Aspect ratio", lambda run: run.aspect_ratio),
    ("Keep audio", lambda run: "yes" if run.keep_audio else "no"),
    ("Output", lambda run: run.result_resolution or "—"),
    ("Cost", lambda run: usd(run.billed_cost_micros)),
]


@dataclass(frozen=True)
class SettingRow:
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True)
class Compared:
    run: Run
    prompt: list[Piece]  # against the first run's prompt (the first: all "same")


class Comparison:
    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = list(runs)

    @cached_property
    def compared(self) -> list[Compared]:
        base = self.runs[0].prompt
        return [Compared(run, word_diff(base, run.prompt)) for run in self.runs]

    @cached_property
    def settings(self) -> list[SettingRow]:
        return [SettingRow(label, [read(run) for run in self.runs]) for label, read in SETTINGS]

    @cached_property
    def references(self) -> list[Reference]:
        """Each distinct reference once, in the order the runs use them."""
        seen: dict[int, Reference] = {}
        for run in self.runs:
            if run.reference is not None:
                seen.setdefault(run.reference.pk, run.reference)
        return list(seen.values())

    @property
    def fps(self) -> float:
        return self.runs[0].result_fps or 24
