"""The cut plan lists an uncovered head and tail of the window as gaps, like a gap between segments."""

from __future__ import annotations

from pipeline.recording.export import plan_cut
from pipeline.recording.index import Segment

SEGS = [Segment("a", 100.0, 110.0, 1), Segment("b", 110.0, 120.0, 1), Segment("c", 130.0, 140.0, 1)]


def test_a_window_reaching_past_both_ends_lists_head_and_tail() -> None:
    offset, duration, gaps = plan_cut(SEGS, 90.0, 150.0)
    assert offset == 0.0 and duration == 30.0
    assert gaps == [(90.0, 100.0), (120.0, 130.0), (140.0, 150.0)]


def test_a_window_inside_the_recording_has_no_head_or_tail() -> None:
    assert plan_cut(SEGS, 100.2, 139.8)[2] == [(120.0, 130.0)]  # within the gap tolerance of both ends
    assert plan_cut(SEGS[:2], 101.0, 119.0)[2] == []
