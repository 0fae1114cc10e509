"""Word-by-word differences between two texts, for the compare page's prompt diff."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

# A word and the spaces after it stay together, so a diff re-joins to the text exactly.
TOKEN = re.compile(r"\S+\s*|\s+")
# Above this many word pairs between the differing middles, no word-by-word diff: about
# 25 ms for the worst text at 150 × 150 words.
MAX_MIDDLE_PAIRS = 150 * 150


@dataclass(frozen=True)
class Piece:
    kind: Literal["same", "added", "removed"]
    text: str


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def word_diff(before: str, after: str) -> list[Piece]:
    """How `after` differs from `before`, as runs of same / removed / added words.

    Words are compared without their trailing spaces, so re-wrapping a prompt is no change.
    The words both share at the start and the end are set aside first (in linear time):
    variants of one prompt mostly differ in a few words between them.
    """
    a, b = tokens(before), tokens(after)
    words_a, words_b = [t.strip() for t in a], [t.strip() for t in b]
    start = 0
    while start < min(len(a), len(b)) and words_a[start] == words_b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and words_a[-1 - end] == words_b[-1 - end]:
        end += 1
    pieces = [Piece("same", "".join(b[:start]))] if start else []
    middle_a, middle_b = words_a[start : len(a) - end], words_b[start : len(b) - end]
    if len(middle_a) * len(middle_b) > MAX_MIDDLE_PAIRS:
        # SequenceMatcher's time grows with the cube of the words on repetitive text (16 s
        # for two 2,500-character prompts of one repeated word): past this, the middle is
        # shown as replaced whole.
        opcodes: Sequence[tuple[str, int, int, int, int]] = [
            ("replace", 0, len(middle_a), 0, len(middle_b))
        ]
    else:
        opcodes = SequenceMatcher(a=middle_a, b=middle_b, autojunk=False).get_opcodes()
    for op, a1, a2, b1, b2 in opcodes:
        a1, a2, b1, b2 = a1 + start, a2 + start, b1 + start, b2 + start
        if op == "equal":
            pieces.append(Piece("same", "".join(b[b1:b2])))
            continue
        if a1 != a2:
            pieces.append(Piece("removed", "".join(a[a1:a2])))
        if b1 != b2:
            pieces.append(Piece("added", "".join(b[b1:b2])))
    if end:
        pieces.append(Piece("same", "".join(b[len(b) - end :])))
    return pieces
