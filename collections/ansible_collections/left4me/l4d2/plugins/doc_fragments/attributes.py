# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Attributes several left4me modules share, documented once (after community.general's
``doc_fragments/attributes.py`` and its ``INFO_MODULE``)."""

from __future__ import annotations


class ModuleDocFragment:
    # left4me.l4d2.attributes.read_only: a module that never changes anything
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""
