# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What srcds_install declares about itself matches what it does."""

from __future__ import annotations

import pathlib
import sys

import yaml

try:
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_install
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_install

DOCS = yaml.safe_load(srcds_install.DOCUMENTATION)


def test_check_mode_is_declared_partial_with_what_it_cannot_predict():
    check_mode = DOCS["attributes"]["check_mode"]
    # It cannot know whether Steam has a newer build without running steamcmd.
    assert check_mode["support"] == "partial"
    details = " ".join(check_mode["details"])
    assert "newer build" in details and "never" in details


def test_execstack_choice_is_documented_with_the_alternative():
    option = " ".join(DOCS["options"]["clear_execstack"]["description"])
    for words in ("glibc 2.41", "PT_GNU_STACK", "GLIBC_TUNABLES=glibc.rtld.execstack=2",
                  "6978", "8116", "execstack_record"):
        assert words in option, words
    assert DOCS["options"]["clear_execstack"]["default"] is True
