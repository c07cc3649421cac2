"""Real systemd test hosts for left4me: debootstrapped Debian booted by systemd-nspawn.

`python -m testhosts --help` is the command line; `tests/conftest.py` and the molecule
create/destroy playbooks are its other callers.
"""
