"""Composing a pen pal's reply: an interface, and a deterministic template-based composer."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Persona:
    """An AI pen pal: a platform user whose letters are written by a composer."""

    user_id: int
    name: str
    tone: str = "warm"


@dataclass(frozen=True)
class IncomingLetter:
    """The letter being answered."""

    id: int
    author_id: int
    body: str


class Composer(Protocol):
    """Writes a reply. An implementation may call a language model; it must return the reply's text."""

    def compose(self, letter: IncomingLetter, persona: Persona) -> str:
        """The reply of ``persona`` to ``letter``."""


OPENINGS = {
    "warm": ["Thank you for your letter.", "Your letter made my day.", "It was lovely to hear from you."],
    "curious": ["Your letter left me with questions.", "I read your letter twice.", "What a letter!"],
}
CLOSINGS = ["Write back soon,", "Until your next letter,", "With best wishes,"]


class TemplateComposer:
    """Replies from templates, chosen by a hash of the letter: the same letter always gets the same reply.

    Needs no external service, so the plugin runs and tests anywhere.
    """

    def compose(self, letter: IncomingLetter, persona: Persona) -> str:
        digest = int(hashlib.sha256(f"{letter.id}:{persona.user_id}".encode()).hexdigest(), 16)
        openings = OPENINGS.get(persona.tone, OPENINGS["warm"])
        first = re.split(r"(?<=[.!?])\s+", letter.body.strip(), maxsplit=1)[0] if letter.body.strip() else ""
        words = len(letter.body.split())
        echo = f'You wrote: "{first}" ' if first else ""
        return (
            f"{openings[digest % len(openings)]} {echo}"
            f"Your {words} words travelled all the way to me, and I am answering them now.\n\n"
            f"{CLOSINGS[digest // 7 % len(CLOSINGS)]}\n{persona.name}"
        )
