"""An embedded AWS emulator (moto server on loopback) and a scoped AWS environment pointing at it.

The environment is set for the run only and restored afterwards, so the same process can run the
pipeline twice (tests) and nothing leaks into the user's shell or real AWS credentials are never used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator

from sentiment_local import moto_patches
from sentiment_shared import aws
from sentiment_shared.settings import reset_settings_cache

LOCAL_REGION = "us-east-1"
_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sentiment-local",
    "AWS_SECRET_ACCESS_KEY": "sentiment-local",
    "AWS_SESSION_TOKEN": "sentiment-local",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_moto() -> Iterator[str]:
    """Start a moto server on a free loopback port; yield its URL; stop it however the run ends."""
    from moto.server import ThreadedMotoServer

    moto_patches.install()  # transactions copy what they touch, not the table (sentiment_local.moto_patches)
    # The server's per-request access log would drown the pipeline's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def scoped_environ(values: dict[str, str], *, remove: tuple[str, ...] = ()) -> Iterator[None]:
    """Set (and remove) environment variables for the block only; restore the previous values after."""
    names = set(values) | set(remove)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in remove:
            os.environ.pop(name, None)
        os.environ.update(values)
        aws.reset_clients()
        reset_settings_cache()
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        aws.reset_clients()
        reset_settings_cache()


@contextlib.contextmanager
def aws_environment(endpoint_url: str, region: str = LOCAL_REGION) -> Iterator[None]:
    """Every AWS client in the block talks to ``endpoint_url`` with dummy credentials."""
    per_service = tuple(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_"))
    with scoped_environ(
        {"AWS_ENDPOINT_URL": endpoint_url, "AWS_REGION": region, "AWS_DEFAULT_REGION": region, **_DUMMY_CREDENTIALS},
        remove=("AWS_PROFILE", *per_service),
    ):
        yield
