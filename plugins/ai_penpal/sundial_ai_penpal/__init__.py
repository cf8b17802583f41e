"""AI pen pals: replies composed behind an interface, on a per-pen-pal cooldown."""

from .composer import Composer, IncomingLetter, Persona, TemplateComposer

__all__ = ["Composer", "IncomingLetter", "Persona", "TemplateComposer"]
