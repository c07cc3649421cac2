"""Fake Steam Web API: workshop details, collections, player summaries, and the files."""
