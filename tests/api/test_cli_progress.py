"""The progress line `psasync sync` draws while it follows a run."""

from __future__ import annotations

from api.cli import _progress_line
from models import RunStatus, SyncRun


def test_progress_shows_a_bar_and_share_once_the_total_is_known() -> None:
    run = SyncRun(status=RunStatus.RUNNING, processed=250, total=1000, phase="contacts")
    line = _progress_line(run, width=20)
    assert line.startswith("Syncing... [#####---------------]")
    assert "25%" in line
    assert "250/1,000 (contacts)" in line


def test_progress_without_a_total_counts_records() -> None:
    run = SyncRun(status=RunStatus.QUEUED, processed=0, total=None, phase=None)
    assert _progress_line(run) == "Queued 0 records (starting)"


def test_progress_never_passes_a_full_bar() -> None:
    run = SyncRun(status=RunStatus.RUNNING, processed=1200, total=1000, phase="relations")
    assert "100%" in _progress_line(run)
