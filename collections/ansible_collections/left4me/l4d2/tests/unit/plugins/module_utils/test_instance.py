# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_instance.py: settings validation, the files an instance is made
of (env file, instance cfg, unit drop-in) and port conflicts, without a host."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _overlay as overlay
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _overlay as overlay


@pytest.fixture
def layout(tmp_path):
    state = tmp_path / "state"
    for sub in ("installation", "overlays/maps", "overlays/competitive", "workshop_cache"):
        (state / sub).mkdir(parents=True)
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    (tmp_path / "systemd").mkdir()
    return inst.HostLayout(str(state), str(tmp_path / "etc"), str(tmp_path / "systemd"))


def spec(layout, **raw):
    return inst.validate_spec({"name": "coop1", "port": 27015, **raw}, layout)


def test_defaults_and_layers_in_order(layout):
    result = spec(layout, overlays=["competitive", "maps"])
    assert result.layers == (f"{layout.state_dir}/overlays/competitive",
                             f"{layout.state_dir}/overlays/maps")
    assert (result.ip, result.map, result.maxplayers, result.tickrate) == (
        "0.0.0.0", "c1m1_hotel", 8, 30)
    assert inst.lowerdirs_of(result, layout) == [
        layout.config_layer("coop1"), *result.layers, f"{layout.state_dir}/installation"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "Coop"}, "invalid instance name 'Coop'"),
        ({"name": "a" * 65}, "invalid instance name"),
        ({"name": "x/../y"}, "invalid instance name"),
        ({"port": None}, "port is required"),
        ({"port": 1023}, "between 1024 and 65535, got 1023"),
        ({"port": 65536}, "between 1024 and 65535, got 65536"),
        ({"port": "abc"}, "must be a whole number"),
        ({"client_port": 27015}, "client_port must differ from port 27015"),
        ({"lowerdirs": ["/etc"]}, "outside the allowed roots"),
        ({"lowerdirs": ["/nonexistent/../etc"]}, "'..' component"),
        ({"lowerdirs": ["relative/dir"]}, "not an absolute path"),
        ({"overlays": ["../installation"]}, "is not a directory name"),
        ({"overlays": [".instance-x"]}, "is not a directory name"),
        ({"overlays": ["missing"]}, "does not exist"),
        ({"overlays": ["maps"], "lowerdirs": []}, "lowerdirs or overlays, not both"),
        ({"overlays": ["maps", "maps"]}, "duplicates lowerdir #1"),
        ({"lowerdirs": ["{state}/installation"]}, "must not list the installation"),
        ({"lowerdirs": ["{state}/overlays/maps"] * 499}, "make 501"),
        ({"map": "c1m1;quit"}, "is not a map name"),
        ({"hostname": 'a"b'}, "double quotes"),
        ({"rcon_password": "a;b"}, "semicolons"),
        ({"rcon_password": "a\nrcon_password x"}, "line breaks"),
        ({"args": ["+sv_lan 1"]}, "one word"),
        ({"args": ["+rcon_password", "x"]}, "never on the command line"),
        ({"args": ["$(id)"]}, "one word"),
        ({"environment": {"LEFT4ME_PORT": "1"}}, "reserved for left4me"),
        ({"environment": {"lower": "1"}}, "must match"),
        ({"environment": {"X": "a$b"}}, "contains '$'"),
        ({"allowed_cpus": "all"}, "CPU list"),
        ({"ip": "999.1.1.1"}, "not an IP address"),
        ({"maxplayers": 0}, "between 1 and 64"),
        ({"tickrate": 1000}, "between 10 and 128"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(layout, raw, message):
    raw = {k: [p.format(state=layout.state_dir) for p in v] if k == "lowerdirs" else v
           for k, v in raw.items()}
    with pytest.raises(inst.InstanceError, match=re.escape(message)):
        spec(layout, **raw)


def test_symlinked_layer_is_resolved_and_checked(layout, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = pathlib.Path(layout.state_dir, "overlays", "sneaky")
    link.symlink_to(outside)
    with pytest.raises(inst.InstanceError, match="outside the allowed roots"):
        spec(layout, overlays=["sneaky"])


def test_env_file_round_trips_through_the_mount_helpers_parser(layout):
    result = spec(layout, overlays=["maps"], client_port=27005, args=["+sv_lan", "1"],
                  environment={"SRCDS_SIM_CRASH_AT_START": "1"}, rcon_password="s3cret")
    text = inst.render_env(result, layout)
    env = overlay.parse_env(text)
    assert overlay.lowerdirs_from_env(env) == inst.lowerdirs_of(result, layout)
    assert env["LEFT4ME_PORT"] == "27015" and env["LEFT4ME_CLIENT_PORT"] == "27005"
    assert shlex.split(env["LEFT4ME_ARGS"]) == ["-clientport", "27005", "+sv_lan", "1"]
    assert env["SRCDS_SIM_CRASH_AT_START"] == "1"
    assert "s3cret" not in text
    assert inst.ports_from_env(env) == [27015, 27005]


def test_instance_cfg_holds_the_secret_and_the_diff_masks_it(layout):
    result = spec(layout, hostname="Coop #1", rcon_password="s3cret")
    assert 'hostname "Coop #1"' in inst.render_instance_cfg(result)
    assert 'rcon_password "s3cret"' in inst.render_instance_cfg(result)
    masked = inst.render_instance_cfg(result, mask_secrets=True)
    assert "s3cret" not in masked and 'rcon_password "********"' in masked
    assert "rcon_password" not in inst.render_instance_cfg(spec(layout))


def test_dropin_allows_exactly_the_instance_ports(layout):
    text = inst.render_dropin(spec(layout, client_port=27005, allowed_cpus="1-3"))
    allowed = [line.split("=", 1)[1] for line in text.splitlines()
               if line.startswith("SocketBindAllow=")]
    assert allowed == ["udp:27015", "udp:27005", "tcp:27015"]
    assert "AllowedCPUs=1-3" in text
    assert "AllowedCPUs" not in inst.render_dropin(spec(layout))


def test_ports_are_unique_among_the_given_instances(layout):
    one = spec(layout)
    two = inst.validate_spec({"name": "versus1", "port": 27016, "client_port": 27015}, layout)
    with pytest.raises(inst.InstanceError, match="port 27015 is used by both instance 'coop1'"
                       " and 'versus1'"):
        inst.check_unique([one, two])
    with pytest.raises(inst.InstanceError, match="listed twice"):
        inst.check_unique([one, one])


def test_ports_of_other_instances_on_the_host_are_taken(layout):
    others = {"old": {"LEFT4ME_PORT": "27020", "LEFT4ME_CLIENT_PORT": "27015"}}
    with pytest.raises(inst.InstanceError, match="already configured for instance 'old'"):
        inst.check_ports_against_host([spec(layout)], others)
    inst.check_ports_against_host([spec(layout, port=27030)], others)


def test_configured_instances_reads_env_files_and_skips_foreign_names(layout):
    directory = pathlib.Path(layout.instances_dir)
    (directory / "coop1.env").write_text("LEFT4ME_PORT=27015\n")
    (directory / "Not-An-Instance.env").write_text("LEFT4ME_PORT=1\n")
    (directory / "broken.env").write_text("this is not an env file\n")
    (directory / "notes.txt").write_text("x")
    found = inst.configured_instances(layout)
    assert found == {"coop1": {"LEFT4ME_PORT": "27015"}, "broken": {}}


def test_file_change_and_atomic_write(layout, tmp_path):
    path = tmp_path / "etc" / "instances" / "coop1.env"
    wanted = inst.ManagedFile(str(path), "A=1\n", os.getuid(), os.getgid(), 0o640)
    change = inst.file_change(wanted)
    assert change.content_changed and change.before is None
    inst.write_file(wanted)
    assert path.read_text() == "A=1\n" and (path.stat().st_mode & 0o777) == 0o640
    assert not inst.file_change(wanted).changed
    path.chmod(0o644)
    change = inst.file_change(wanted)
    assert change.attrs_changed and not change.content_changed
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".left4me-")] == []


def test_config_layer_dirs_and_removal_targets(layout):
    dirs = inst.config_layer_dirs(layout, "coop1")
    assert dirs[0] == f"{layout.state_dir}/overlays/.instance-coop1"
    assert dirs[-1] == f"{layout.state_dir}/overlays/.instance-coop1/left4dead2/cfg/left4me"
    assert os.path.dirname(layout.instance_cfg("coop1")) == dirs[-1]
    assert inst.removal_targets(layout, "coop1", layout.state_dir) == [
        layout.env_file("coop1"),
        f"{layout.systemd_dir}/left4me-server@coop1.service.d",
        f"{layout.state_dir}/overlays/.instance-coop1",
        f"{layout.state_dir}/runtime/coop1",
    ]
