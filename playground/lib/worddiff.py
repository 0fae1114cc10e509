"""Word-by-word differences between two texts, for the compare page's prompt diff."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

# A word and the spaces after it stay together, so a diff re-joins to the text exactly.
TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Piece:
    kind: Literal["same", "added", "removed"]
    text: str


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def word_diff(before: str, after: str) -> list[Piece]:
    """How `after` differs from `before`, as runs of same / removed / added words.

    Words are compared without their trailing spaces, so re-wrapping a prompt is no change.
    """
    a, b = tokens(before), tokens(after)
    matcher = SequenceMatcher(a=[t.strip() for t in a], b=[t.strip() for t in b], autojunk=False)
    pieces: list[Piece] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(b[b1:b2])))
            continue
        if a1 != a2:
            pieces.append(Piece("removed", "".join(a[a1:a2])))
        if b1 != b2:
            pieces.append(Piece("added", "".join(b[b1:b2])))
    return pieces
