"""The terminal progress bar of ``bucketlake sync``."""

from __future__ import annotations

import io

from ingest_assets.cli.progress_bar import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_redraws_in_place_below_printed_lines() -> None:
    screen = Terminal()
    bar = ProgressBar(4, stream=screen)
    bar.say("  inbox_000001: 500 items (500 ok)")
    bar.advance(500)
    bar.advance(300)
    bar.close()

    text = screen.getvalue()
    assert "  inbox_000001: 500 items (500 ok)\n" in text
    assert "[############............] 2/4 batches, 800 items" in text
    assert "ETA" in text and text.endswith("\r\033[K")


def test_no_bar_when_not_a_terminal() -> None:
    plain = io.StringIO()
    bar = ProgressBar(3, stream=plain)
    bar.advance(10)
    bar.close()
    assert not bar.enabled and plain.getvalue() == ""
