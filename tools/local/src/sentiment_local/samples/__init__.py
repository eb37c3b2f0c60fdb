"""The sample feed shipped with the package: 48 invented review and news entries of mixed sentiment.

The local pipeline's default feed and a test fixture. It travels inside the wheel (uv_build packs every
file under the module), so it is found through :mod:`importlib.resources`, not a repository path.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

SAMPLE_FEED_NAME = "sample_feed.xml"
SAMPLE_FEED_ENTRIES = 48


def sample_feed_bytes() -> bytes:
    """The sample feed's XML."""
    return resources.files(__name__).joinpath(SAMPLE_FEED_NAME).read_bytes()


def sample_feed_path() -> Path:
    """A filesystem path of the sample feed (copied to a temporary file if the package is zipped)."""
    ref = resources.files(__name__).joinpath(SAMPLE_FEED_NAME)
    if isinstance(ref, Path):
        return ref
    target = Path(tempfile.gettempdir()) / f"sentiment-ingestion-{SAMPLE_FEED_NAME}"
    target.write_bytes(ref.read_bytes())
    return target
