"""Plate and face search helpers shared by the Redis store (index writer) and the API (reader)."""
