"""Continuous recording (segments written by the capture workers), the segment index, retention and clip export."""
