"""What the servicers work with: the engine's parts, handed over explicitly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..clock import Clock
from ..config import Settings
from ..control import Control
from ..deadletters import DeadLetters
from ..handlers import HandlerRegistry
from ..plugins.manager import Plugins
from ..signing import EventVerifier
from ..store.sqlalchemy import SQLStore


@dataclass
class ApiContext:
    """The parts of one Sundial process that the API serves."""

    settings: Settings
    store: SQLStore
    control: Control
    dead_letters: DeadLetters
    plugins: Plugins
    registry: HandlerRegistry
    clock: Clock
    #: tell this process's scheduler and relay that jobs, pauses or runs changed
    wake: Callable[[], None] = lambda: None
    #: None when no event signing secret is configured
    verifier: EventVerifier | None = None
    #: set at shutdown: streams end
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def max_page_size(self) -> int:
        return self.settings.api_max_page_size


class Servicer:
    """The base of every servicer: it serves ``api``."""

    def __init__(self, api: ApiContext) -> None:
        self.api = api
