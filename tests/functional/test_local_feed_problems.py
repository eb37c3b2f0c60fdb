"""``sentiment-local run`` on a feed it cannot read, or reads only in part, says so instead of an empty table."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from model_fixtures import make_model_dir

from sentiment_local import cli as local_cli

pytestmark = pytest.mark.functional


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_feed_url_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model_dir(tmp_path / "model")
    feed = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    argv = ["run", "--model-dir", str(model), "--feed", feed, "--state-dir", str(tmp_path / "state"), "--json"]

    code = local_cli.main(argv)

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"sentiment-local: error: cannot read the feed {feed}: ")


def test_a_malformed_feed_shows_its_warning_and_the_skipped_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_model_dir(tmp_path / "model")
    feed = tmp_path / "broken.xml"
    feed.write_text("<rss><channel><item><title>cut short", encoding="utf-8")
    argv = ["run", "--model-dir", str(model), "--feed", str(feed), "--state-dir", str(tmp_path / "state")]

    code = local_cli.main(argv)

    out, _ = capsys.readouterr()
    assert code == 0
    assert "recovered from malformed feed" in out
    assert "skipped (feed entries)" in out
