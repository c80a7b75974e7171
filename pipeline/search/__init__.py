"""Plate and face search for the API: queries over the Redis store's indexes (the plate-text helpers both
sides share, fuzzy distance and n-grams, live in :mod:`pipeline.plates`)."""
