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
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib
from ansible_collections.left4me.l4d2.plugins.module_utils import _journal as journal


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


BAD_SETTINGS = [
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
]


@pytest.mark.parametrize(("raw", "message"), BAD_SETTINGS)
def test_bad_settings_are_refused_with_a_clear_message(layout, raw, message):
    raw = {k: [p.format(state=layout.state_dir) for p in v] if k == "lowerdirs" else v
           for k, v in raw.items()}
    with pytest.raises(inst.InstanceError, match=re.escape(message)):
        spec(layout, **raw)


# The rules read nothing on the host: what the rules alone refuse, the parser refuses,
# with the same message, against a layout that does not exist.
PURE = [(raw, message) for raw, message in BAD_SETTINGS
        if message not in ("outside the allowed roots", "does not exist")]


@pytest.mark.parametrize(("raw", "message"), PURE)
def test_the_parser_alone_refuses_what_the_rules_refuse(tmp_path, raw, message):
    nowhere = inst.HostLayout(str(tmp_path / "nowhere"), str(tmp_path / "etc"))
    raw = {k: [p.format(state=nowhere.state_dir) for p in v] if k == "lowerdirs" else v
           for k, v in raw.items()}
    with pytest.raises(inst.InstanceError, match=re.escape(message)):
        inst.parse_spec({"name": "coop1", "port": 27015, **raw}, nowhere)
    assert not (tmp_path / "nowhere").exists()


def test_the_parser_keeps_layers_as_given_and_the_host_check_resolves_them(layout, tmp_path):
    raw = {"name": "coop1", "port": 27015, "overlays": ["maps", "missing"]}
    parsed = inst.parse_spec(raw, layout)
    assert parsed.layers == (f"{layout.state_dir}/overlays/maps",
                             f"{layout.state_dir}/overlays/missing")
    with pytest.raises(inst.InstanceError, match="lowerdir #2 .*/missing does not exist"):
        inst.check_layers(parsed, layout)
    link = pathlib.Path(layout.state_dir, "overlays", "alias")
    link.symlink_to(pathlib.Path(layout.state_dir, "overlays", "maps"))
    aliased = inst.parse_spec({**raw, "overlays": ["alias"]}, layout)
    assert inst.check_layers(aliased, layout).layers == (f"{layout.state_dir}/overlays/maps",)


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
    env = mount_lib.parse_env(text)
    assert mount_lib.lowerdirs_from_env(env) == inst.lowerdirs_of(result, layout)
    assert env["LEFT4ME_PORT"] == "27015" and env["LEFT4ME_CLIENT_PORT"] == "27005"
    assert shlex.split(env["LEFT4ME_ARGS"]) == ["+clientport", "27005", "-nohltv", "+sv_lan", "1"]
    assert env["SRCDS_SIM_CRASH_AT_START"] == "1"
    assert "s3cret" not in text
    assert inst.ports_from_env(env) == [27015, 27005]


def test_instance_cfg_holds_the_secret_and_the_diff_masks_it(layout):
    result = spec(layout, hostname="Coop #1", rcon_password="s3cret")
    assert 'rcon_password "s3cret"' in inst.render_instance_cfg(result)
    assert 'servercfgfile "left4me/mapload.cfg"' in inst.render_instance_cfg(result)
    masked = inst.render_instance_cfg(result, mask_secrets=True)
    assert "s3cret" not in masked and 'rcon_password "********"' in masked
    assert "rcon_password" not in inst.render_instance_cfg(spec(layout))


def test_every_map_load_runs_server_cfg_then_the_instance_cfg_again(layout):
    """The overlays' server.cfg may rename the server, but the password left4me set comes
    back after it at every map load (srcds runs servercfgfile there)."""
    result = spec(layout, hostname="Coop #1", rcon_password="s3cret")
    lines = inst.render_mapload_cfg(result).splitlines()
    commands = [line for line in lines if not line.startswith("//")]
    assert commands == ['hostname "Coop #1"', "exec server.cfg", "exec left4me/instance.cfg"]
    assert "s3cret" not in "\n".join(lines)
    assert layout.mapload_cfg("coop1") == os.path.join(
        os.path.dirname(layout.instance_cfg("coop1")), "mapload.cfg")


def test_dropin_allows_exactly_the_instance_ports(layout):
    text = inst.render_dropin(spec(layout, client_port=27005, allowed_cpus="1-3"))
    allowed = [line.split("=", 1)[1] for line in text.splitlines()
               if line.startswith("SocketBindAllow=")]
    assert allowed == ["udp:27015", "udp:27005", "tcp:27015"]
    assert "AllowedCPUs=1-3" in text
    assert "AllowedCPUs" not in inst.render_dropin(spec(layout))


def dropin_directives(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith(("#", "[")) and "SocketBindAllow" not in line)


def test_every_server_gets_memory_task_and_cpu_limits_by_default(layout):
    text = inst.render_dropin(spec(layout))
    assert dropin_directives(text) == {
        "MemoryMax": "2G", "MemorySwapMax": "0", "TasksMax": "256", "CPUQuota": "100%",
        "CPUWeight": "100"}
    assert f"LEFT4ME_UPPER_DIR_MAX={2 << 30}\n" in inst.render_env(spec(layout), layout)


def test_limits_given_per_instance_reach_the_dropin_and_env_file(layout):
    result = spec(layout, memory_max="1536M", memory_swap_max="256M", tasks_max=512,
                  cpu_quota="150%", cpu_weight=50, upper_dir_max="10G")
    assert dropin_directives(inst.render_dropin(result)) == {
        "MemoryMax": "1536M", "MemorySwapMax": "256M", "TasksMax": "512", "CPUQuota": "150%",
        "CPUWeight": "50"}
    assert f"LEFT4ME_UPPER_DIR_MAX={10 << 30}\n" in inst.render_env(result, layout)
    # The mount helper reads the cap back from the env file as written.
    env = mount_lib.parse_env(inst.render_env(result, layout))
    assert mount_lib.upper_dir_max_from_env(env) == 10 << 30


def test_every_limit_in_the_dropin_says_why(layout):
    lines = inst.render_dropin(spec(layout)).splitlines()
    for index, line in enumerate(lines):
        if line.split("=")[0] in dropin_directives("\n".join(lines)):
            assert lines[index - 1].startswith("# "), f"{line} has no comment"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"memory_max": "lots"}, "instance 'coop1': memory_max 'lots' must be a size"),
        ({"memory_max": "2GB"}, "memory_max '2GB' must be a size"),
        ({"memory_max": "100M"}, "memory_max '100M' is below the 256M a server needs"),
        ({"memory_swap_max": "-1"}, "memory_swap_max '-1' must be a size"),
        ({"tasks_max": 8}, "tasks_max must be between 32 and 65536, got 8"),
        ({"tasks_max": "many"}, "tasks_max must be a whole number"),
        ({"cpu_quota": 0}, r"cpu_quota \(percent of one CPU\) must be between 1 and 102400"),
        ({"cpu_weight": 20000}, "cpu_weight must be between 1 and 10000, got 20000"),
        ({"upper_dir_max": "1M"}, "upper_dir_max '1M' is below the 64M a server needs"),
    ],
)
def test_bad_limits_are_refused_by_name(layout, raw, message):
    with pytest.raises(inst.InstanceError, match=message):
        spec(layout, **raw)


def test_ports_are_unique_among_the_given_instances(layout):
    one = spec(layout, client_port=27005)
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
    inst.write_managed_file(wanted)
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
        f"{layout.config_dir}/instances/coop1.manager",
        f"{layout.systemd_dir}/left4me-server@coop1.service.d",
        f"{layout.state_dir}/overlays/.instance-coop1",
        f"{layout.state_dir}/runtime/coop1/writes.img",
        f"{layout.state_dir}/runtime/coop1",
    ]


def test_the_game_may_write_in_left4dead2_and_cfg_but_not_in_left4me(layout):
    """srcds creates cfg/banned_user.cfg (writeid), cfg/banned_ip.cfg (writeip) and
    left4dead2/logs/; the directory with the RCON password stays root's."""
    specs = {os.path.relpath(s.path, layout.config_layer("coop1")): s
             for s in inst.config_layer_dir_specs(layout, "coop1", 1234)}
    assert {path: (s.uid, s.gid, oct(s.mode)) for path, s in specs.items()} == {
        ".": (0, 1234, "0o750"),
        "left4dead2": (0, 1234, "0o1770"),
        "left4dead2/cfg": (0, 1234, "0o1770"),
        "left4dead2/cfg/left4me": (0, 1234, "0o750"),
    }


# --- the Steam client links ------------------------------------------------------------


def steam_home(tmp_path, sdk32="ok", sdk64="ok") -> pathlib.Path:
    """A home with ~/.steam/sdkNN/steamclient.so: "ok" (resolves), "dangling" or None."""
    home = tmp_path / "home"
    for sdk, arch, how in (("sdk32", "linux32", sdk32), ("sdk64", "linux64", sdk64)):
        target = tmp_path / "steam" / arch / "steamclient.so"
        if how == "ok":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"\x7fELF")
        if how is not None:
            (home / ".steam" / sdk).mkdir(parents=True, exist_ok=True)
            (home / ".steam" / sdk / "steamclient.so").symlink_to(target)
    home.mkdir(exist_ok=True)
    return home


@pytest.mark.parametrize(
    ("sdk32", "sdk64", "problems"),
    [
        ("ok", "ok", []),
        (None, "ok", [r"\.steam/sdk32/steamclient\.so is missing$"]),
        ("ok", "dangling", [r"\.steam/sdk64/steamclient\.so points to .*/linux64/steamclient"
                            r"\.so, which does not exist$"]),
        (None, None, [r"sdk32/steamclient\.so is missing", r"sdk64/steamclient\.so is missing"]),
    ],
)
def test_missing_steam_links_names_each_link_that_does_not_resolve(
        tmp_path, sdk32, sdk64, problems):
    found = inst.missing_steam_links(str(steam_home(tmp_path, sdk32, sdk64)))
    assert len(found) == len(problems)
    for text, pattern in zip(found, problems, strict=True):
        assert re.search(pattern, text), text


def test_missing_steam_links_names_steamcmds_library_turned_into_a_self_link(tmp_path):
    # What writing steamclient.so through ~/.steam/sdk32 -> steamcmd's linux32 left behind.
    home = steam_home(tmp_path, sdk32=None)
    library = tmp_path / "steam" / "linux32" / "steamclient.so"
    library.parent.mkdir(parents=True)
    library.symlink_to(library)
    (home / ".steam" / "sdk32").symlink_to(library.parent)
    [problem] = inst.missing_steam_links(str(home))
    assert "a link to itself" in problem and str(library) in problem


def test_steam_links_message_says_what_breaks_and_how_to_fix_it():
    message = inst.steam_links_message(["/h/.steam/sdk32/steamclient.so is missing"],
                                       ["versus1", "coop1"])
    assert message.startswith("not starting coop1, versus1: /h/.steam/sdk32/steamclient.so is")
    assert "LAN-only" in message and "playbooks/site.yml" in message
    assert "left4me.l4d2.game_host" in message


# --- why a start failed, from the journal ----------------------------------------------

UNIT = "left4me-server@coop1.service"


def systemd_line(message: str, invocation: str = "") -> dict:
    entry = {"MESSAGE": message, "_PID": "1", "SYSLOG_IDENTIFIER": "systemd", "UNIT": UNIT}
    if invocation:
        entry["INVOCATION_ID"] = invocation
    return entry


def output_line(message, invocation: str, identifier: str = "srcds_run") -> dict:
    return {"MESSAGE": message, "_PID": "4242", "_TRANSPORT": "stdout",
            "SYSLOG_IDENTIFIER": identifier, "_SYSTEMD_INVOCATION_ID": invocation}


TAINTED = ("left4me-mount: mount coop1: upper dir /var/lib/left4me/runtime/coop1/upper was"
           " written by fuse-overlayfs (x has xattr user.fuseoverlayfs.opaque); move it aside")


def test_the_mount_helpers_refusal_is_the_reason():
    entries = [
        output_line("Server shutting down.", "old"),  # the run a restart stopped
        systemd_line("Starting left4me-server@coop1.service...", "new"),
        output_line(TAINTED, "new", identifier="python3"),
        systemd_line(f"{UNIT}: Control process exited, code=exited, status=1/FAILURE", "new"),
        systemd_line(f"{UNIT}: Failed with result 'exit-code'.", "new"),
    ]
    assert inst.failure_reason(entries, previous_invocation="old") == TAINTED


def test_a_server_that_dies_at_start_shows_its_last_run_and_how_it_ended():
    entries = [output_line("Server shutting down.", "old")]
    for run in ("r1", "r2"):
        entries += [
            systemd_line("Starting left4me-server@coop1.service...", run),
            output_line("Console initialized.", run),
            output_line(f"Segmentation fault ({run})", run),
            systemd_line(f"{UNIT}: Main process exited, code=exited, status=139/n/a", run),
            systemd_line(f"{UNIT}: Failed with result 'exit-code'.", run),
            systemd_line(f"{UNIT}: Scheduled restart job, restart counter is at 1.", run),
        ]
    entries.append(systemd_line(f"{UNIT}: Start request repeated too quickly."))
    reason = inst.failure_reason(entries, previous_invocation="old")
    assert reason == (
        f"Console initialized. | Segmentation fault (r2) | {UNIT}: Main process exited,"
        f" code=exited, status=139/n/a | {UNIT}: Failed with result 'exit-code'. | {UNIT}:"
        " Start request repeated too quickly."
    )


def test_the_reason_never_shows_a_password():
    entries = [
        output_line('rcon_password "hunter2-secret"', "r1"),
        output_line("echo of the password: hunter2-secret", "r1"),
        output_line('"sv_password" = "other-secret"', "r1"),
        output_line("WARNING: NET_OpenSockets: Couldn't allocate any server IP port", "r1"),
    ]
    reason = inst.failure_reason(entries, secrets=["hunter2-secret"])
    assert "hunter2-secret" not in reason and "other-secret" not in reason
    assert reason.count(journal.SECRET_MASK) == 3
    assert reason.endswith("Couldn't allocate any server IP port")


def test_the_reason_is_bounded():
    entries = [output_line(f"line {i} " + "x" * 1000, "r1") for i in range(100)]
    reason = inst.failure_reason(entries)
    assert len(reason) <= inst.REASON_MAX_CHARS
    assert reason.count(" | ") < inst.REASON_MAX_LINES
    assert "line 99 " in reason and "line 91 " not in reason


def test_cfg_secrets_are_read_from_the_instance_cfg(layout):
    cfg = inst.render_instance_cfg(spec(layout, rcon_password="pa ss", hostname="h"))
    assert inst.cfg_secrets(cfg) == ["pa ss"]
    assert inst.cfg_secrets(None) == []


# --- every port srcds binds, and its CPU speed (issue 18 items 5 and 6) --------------------


def test_client_port_defaults_to_the_next_port(layout):
    """srcds binds a client UDP port at every start (27005 when not told): an instance
    without one would bind a port its unit refuses and quit."""
    result = spec(layout)
    assert result.client_port == 27016
    assert result.ports == (27015, 27016)
    dropin = inst.render_dropin(result)
    assert "SocketBindAllow=udp:27016\n" in dropin
    with pytest.raises(inst.InstanceError, match="client_port"):
        spec(layout, port=65535)


def test_srcds_is_told_its_client_port_and_no_sourcetv(layout):
    """+clientport is the cvar srcds reads (LinuxGSM passes it); -clientport is not srcds
    syntax. -nohltv: no SourceTV socket on 27020, which the unit would refuse."""
    env = mount_lib.parse_env(inst.render_env(spec(layout, client_port=27105), layout))
    args = shlex.split(env["LEFT4ME_ARGS"])
    assert args[:3] == ["+clientport", "27105", "-nohltv"]
    assert "-clientport" not in args


def test_client_port_of_another_instance_is_a_conflict(layout):
    one = spec(layout, name="one", port=27015)
    two = spec(layout, name="two", port=27016)
    with pytest.raises(inst.InstanceError, match="port 27016"):
        inst.check_unique([one, two])


@pytest.mark.parametrize(
    ("max_freq", "cpuinfo", "expected"),
    [
        ("3500000\n", "cpu MHz\t\t: 1200.000\n", 3500),   # scaling driver: its maximum
        (None, "processor\t: 0\ncpu MHz\t\t: 2995.210\n", 2995),  # a VM: the TSC's rate
        ("0\n", "cpu MHz : 2400.5\n", 2400),
        (None, "processor : 0\n", None),
        (None, None, None),
    ],
)
def test_cpu_mhz_read_as_tier0_reads_it(tmp_path, max_freq, cpuinfo, expected):
    sysfs, proc = tmp_path / "max_freq", tmp_path / "cpuinfo"
    if max_freq is not None:
        sysfs.write_text(max_freq)
    if cpuinfo is not None:
        proc.write_text(cpuinfo)
    assert inst.host_cpu_mhz(str(sysfs), str(proc)) == expected


def test_env_file_gives_srcds_its_cpu_speed(layout):
    """ProcSubset=pid hides /proc/cpuinfo from the server: tier0 takes CPU_MHZ first."""
    env = mount_lib.parse_env(inst.render_env(spec(layout), layout, cpu_mhz=2995))
    assert env["CPU_MHZ"] == "2995"
    assert "CPU_MHZ" not in mount_lib.parse_env(inst.render_env(spec(layout), layout))
    own = spec(layout, environment={"CPU_MHZ": "2000"})
    text = inst.render_env(own, layout, cpu_mhz=2995)
    assert mount_lib.parse_env(text)["CPU_MHZ"] == "2000" and text.count("CPU_MHZ=") == 1
