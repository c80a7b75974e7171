"""Outbound notifications of alerts (webhooks)."""
