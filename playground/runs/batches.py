"""Fanning one press of Generate out into several runs: variants of the prompt, several
durations, and repeats (the model is not deterministic, so the same prompt twice makes two
different shots).

The plan is the cross product prompts × durations × repeats, in that order, so the batch
page reads prompt by prompt. Every run of a batch is an ordinary run; only its idempotency
key is derived from the form's, so a resubmitted form finds the runs it already made.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from playground.runs.money import cost_of_seconds

MAX_BATCH_RUNS = 20  # one press of Generate (the in-flight cap may bound it lower)
MAX_REPEAT = 5


@dataclass(frozen=True)
class Variant:
    """One run of a batch: what differs between runs. Everything else is shared."""

    prompt: str
    duration: int

    @property
    def estimated_cost_micros(self) -> int:
        return cost_of_seconds(self.duration)


def plan(prompts: Sequence[str], durations: Sequence[int], repeat: int) -> list[Variant]:
    return [
        Variant(prompt=prompt, duration=duration)
        for prompt in prompts
        for duration in durations
        for _ in range(repeat)
    ]


def estimated_micros(variants: Sequence[Variant]) -> int:
    return sum(variant.estimated_cost_micros for variant in variants)


def variant_prompts(text: str) -> list[str]:
    """The Variants box: one prompt per line; blank lines are gaps, not prompts. Lines end
    at a line feed only, as the page counts them (str.splitlines would also split at
    U+2028 and the like, making more runs than the page said)."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def run_key(batch_key: uuid.UUID, index: int) -> uuid.UUID:
    """The idempotency key of the index-th run of the batch made from one form."""
    return uuid.uuid5(batch_key, f"run-{index}")
