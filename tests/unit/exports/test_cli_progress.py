"""The export CLI's progress display: lines counted as written, shown on a terminal, silent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from observatory_api.exports.cli import _Progress


def test_a_terminal_sees_the_lines_exported_so_far() -> None:
    screen = io.StringIO()
    progress = _Progress(Console(file=screen, force_terminal=True, width=100))
    for _ in range(3):
        progress.add(1_000)
    progress.add(234)
    assert progress.done() == 3_234
    shown = screen.getvalue()
    assert "exporting" in shown and "3,234 lines" in shown


def test_without_a_terminal_nothing_is_shown_but_lines_are_counted(capsys) -> None:  # type: ignore[no-untyped-def]
    progress = _Progress()  # pytest's stderr is not a terminal
    progress.add(5)
    progress.add(7)
    assert progress.done() == 12
    assert capsys.readouterr().err == ""
