# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host vocabulary (_layout): names, unit names and paths, each checked once."""

from __future__ import annotations

import pytest
from ansible_collections.left4me.l4d2.plugins.module_utils import _layout as layout_lib
from ansible_collections.left4me.l4d2.plugins.module_utils._common import Left4meError


class MountError(Left4meError):
    """A caller's own error class: the checks raise what they are given."""


# --- instance names and paths ------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "coop1", "a-b_c", "9lives", "a" * 64, "x-" * 32])
def test_valid_instance_names(name):
    assert layout_lib.validate_instance_name(name, MountError) == name


@pytest.mark.parametrize(
    "name",
    ["", "-a", "_a", "A", "coOp", "a" * 65, "a/b", "a.b", "..", "a b", "a\n", "é", None, 5],
)
def test_invalid_instance_names(name):
    with pytest.raises(MountError, match="invalid instance name"):
        layout_lib.validate_instance_name(name, MountError)


def test_instance_paths_default_state_dir():
    paths = layout_lib.instance_paths("coop1-never-made")
    root = "/var/lib/left4me/runtime/coop1-never-made"
    assert paths.root == root
    assert paths.capped
    assert (paths.upper, paths.work, paths.merged, paths.image, paths.writes) == (
        f"{root}/writes/upper", f"{root}/writes/work", f"{root}/merged",
        f"{root}/writes.img", f"{root}/writes",
    )


def test_an_instance_with_a_plain_upper_dir_keeps_it(tmp_path):
    """An instance made before the cap was a filesystem keeps its upper dir where it is."""
    (tmp_path / "runtime" / "old1" / "upper").mkdir(parents=True)
    paths = layout_lib.instance_paths("old1", str(tmp_path))
    assert not paths.capped
    assert (paths.upper, paths.work) == (f"{tmp_path}/runtime/old1/upper",
                                         f"{tmp_path}/runtime/old1/work")


def test_instance_paths_custom_state_dir_and_errors():
    assert layout_lib.instance_paths("x", "/srv/l4d//").merged == "/srv/l4d/runtime/x/merged"
    with pytest.raises(MountError, match="absolute"):
        layout_lib.instance_paths("x", "srv", MountError)
    with pytest.raises(MountError, match="invalid instance name"):
        layout_lib.instance_paths("../x", error=MountError)


def test_default_allowed_roots_and_env_path():
    assert layout_lib.allowed_roots("/s") == [
        "/s/installation",
        "/s/builds",
        "/s/overlays",
        "/s/workshop_cache",
    ]
    assert layout_lib.env_file_path("coop1") == "/etc/left4me/instances/coop1.env"
    assert layout_lib.env_file_path("x", "/cfg") == "/cfg/instances/x.env"


@pytest.mark.parametrize("overlay_id", ["", "A", ".hidden", "a/b", "..", None])
def test_an_overlay_id_follows_the_id_rule(overlay_id):
    with pytest.raises(MountError, match="invalid overlay id"):
        layout_lib.overlay_root(overlay_id, "/s", MountError)


def test_overlay_root_and_the_instance_files():
    assert layout_lib.overlay_root("maps", "/s//") == "/s/overlays/maps"
    with pytest.raises(Left4meError, match="state_dir must be an absolute path"):
        layout_lib.overlays_path("s")
    layout = layout_lib.HostLayout(state_dir="/s", config_dir="/c", systemd_dir="/u")
    assert layout.instance_cfg("coop1") == (
        "/s/overlays/.instance-coop1/left4dead2/cfg/left4me/instance.cfg")
    assert layout.mapload_cfg("coop1") == (
        "/s/overlays/.instance-coop1/left4dead2/cfg/left4me/mapload.cfg")
    assert layout.dropin_file("coop1") == (
        "/u/left4me-server@coop1.service.d/50-left4me-instance.conf")
    assert layout.manager_file("coop1") == "/c/instances/coop1.manager"
    assert layout_lib.server_unit_name("coop1") == "left4me-server@coop1.service"
    with pytest.raises(MountError, match="invalid instance name"):
        layout_lib.server_unit_name("Coop", MountError)


def test_the_installation_layer_is_taken_from_the_current_build_once_builds_exist(tmp_path):
    state = tmp_path / "state"
    (state / "installation").mkdir(parents=True)  # a plain install from before builds
    installation = str(state / "installation")
    assert layout_lib.game_layer_source(installation, str(state)) == installation
    (state / "builds" / "2").mkdir(parents=True)
    (state / "builds" / "current").symlink_to("2")
    current = str(state / "builds" / "current")
    assert layout_lib.game_layer_source(installation + "/", str(state)) == current
    other = str(state / "overlays" / "maps")
    assert layout_lib.game_layer_source(other, str(state)) == other
