"""What a source hands the core: one raw entry (feed entry or payload item) before normalization."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

KeyKind = Literal["guid", "link", "id"]

DIRECT_SOURCE = "direct"
"""``source`` of texts that arrive in a direct invoke without one."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A raw entry: ``text`` may be HTML; ``key`` is the source's own identity for it, if it has one."""

    text: str | None
    source: str
    key: str | None = None
    key_kind: KeyKind = "id"
    url: str | None = None
    title: str | None = None
    published_at: datetime | None = None
    html: bool = True
    """False when the source says the text is plain (an Atom ``type="text"`` body): no HTML parsing."""
