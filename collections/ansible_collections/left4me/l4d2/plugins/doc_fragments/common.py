# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Options several left4me modules share, documented once.

The defaults and the id rule are the ones in ``plugins/module_utils/_common.py``, which the
modules' argument specs use; ``tests/collection/test_one_copy.py`` checks they agree.
"""

from __future__ import annotations


class ModuleDocFragment:
    # left4me.l4d2.common.state_dir
    STATE_DIR = r"""
options:
  state_dir:
    description:
      - Runtime state root. Below it live C(installation) (the shared game install, a link
        to the current one of the game builds in C(builds/)), C(overlays/) (one directory
        per overlay), C(workshop_cache/) (Workshop downloads all overlays share),
        C(runtime/) (each instance's overlayfs mount) and C(steam/) (steamcmd).
    type: path
    default: /var/lib/left4me
"""

    # left4me.l4d2.common.config_dir
    CONFIG_DIR = r"""
options:
  config_dir:
    description:
      - Configuration root holding C(instances/NAME.env), each instance's environment file.
    type: path
    default: /etc/left4me
"""

    # left4me.l4d2.common.owner
    OWNER = r"""
options:
  owner:
    description:
      - The unprivileged runtime user the game servers run as (role C(left4me.l4d2.game_host)
        creates it). It owns what this module makes for the game to read or write.
    type: str
    default: left4me
"""

    # left4me.l4d2.common.instance_name
    INSTANCE_NAME = r"""
options:
  name:
    description:
      - Instance name (as configured by M(left4me.l4d2.srcds_instance)), 1 to 64 characters
        from C(a-z), C(0-9), C(_) and C(-), starting with a letter or digit.
    type: str
    required: true
"""

    # left4me.l4d2.common.overlay_id
    OVERLAY_ID = r"""
options:
  id:
    description:
      - Overlay id, 1 to 64 characters from C(a-z), C(0-9), C(_) and C(-), starting with a letter
        or digit. It becomes the directory C({state_dir}/overlays/{id}).
    type: str
    required: true
"""
