"""Fake steamcmd: command grammar, output texts and exit codes of Valve's, without a network."""
