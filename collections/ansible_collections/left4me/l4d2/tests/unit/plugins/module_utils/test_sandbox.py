# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_sandbox.py: the build sandbox's property list and the staging tree.

Whether the sandbox really blocks what it should is proven on booted systemd hosts
(molecule/sandbox); these tests pin down what the property list says and how the
staging tree is hashed, made readable and swapped.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import stat
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _sandbox as sandbox
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _sandbox as sandbox

SandboxError = sandbox.SandboxError


def props_for(**kwargs) -> list[tuple[str, str]]:
    paths = sandbox.build_paths("maps", "/var/lib/left4me", "abc123")
    return sandbox.sandbox_properties(paths, "left4me", "left4me", sandbox.Limits(), **kwargs)


def values(props: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in props if key == name]


# --- validation ---------------------------------------------------------------


@pytest.mark.parametrize("good", ["maps", "0", "l4d2center-maps", "a_b", "x" * 64])
def test_valid_overlay_ids(good):
    assert sandbox.build_unit_name(good) == f"left4me-build-{good}.service"


@pytest.mark.parametrize("bad", ["", "Maps", "-x", "_x", "a/b", "..", ".hidden", "x" * 65,
                                 "a b", "a\n", None, 7])
def test_invalid_overlay_ids_are_refused(bad):
    with pytest.raises(SandboxError, match="invalid overlay id"):
        sandbox.build_unit_name(bad)


@pytest.mark.parametrize(("field", "bad"), [
    ("memory_max", "2 G"), ("memory_max", "-1"), ("memory_max", "0"), ("memory_max", "2GB"),
    ("tasks_max", 0), ("tasks_max", "64"), ("cpu_quota", "100"), ("cpu_quota", "0%"),
    ("runtime_max_sec", 0), ("runtime_max_sec", 86401),
])
def test_bad_limits_are_refused(field, bad):
    with pytest.raises(SandboxError, match=field):
        sandbox.Limits(**{field: bad})


def test_default_limits():
    limits = sandbox.Limits()
    assert (limits.memory_max, limits.tasks_max, limits.cpu_quota, limits.runtime_max_sec) == (
        "2G", 256, "100%", 3600)


def test_environment_keys_must_be_shell_names():
    assert sandbox.validate_environment({"TOKEN": "x", "N": 3}) == {"TOKEN": "x", "N": "3"}
    with pytest.raises(SandboxError, match="shell variable name"):
        sandbox.validate_environment({"BAD-KEY": "x"})
    with pytest.raises(SandboxError, match="NUL"):
        sandbox.validate_environment({"K": "a\0b"})


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "10.255.255.255", "172.16.0.1",
    "172.31.255.254", "192.168.1.1", "169.254.169.254", "169.254.77.2", "100.64.0.1",
    "100.127.255.254", "fc00::1", "fd12:3456::1", "fe80::1", "224.0.0.251", "ff02::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1", "0.0.0.0",
])
def test_private_and_local_addresses_are_denied(address):
    assert sandbox.denied_network_of(address) is not None


@pytest.mark.parametrize("address", [
    "203.0.113.10", "1.1.1.1", "9.9.9.9", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111",
])
def test_public_addresses_stay_reachable(address):
    assert sandbox.denied_network_of(address) is None


def test_resolvers_must_be_reachable_public_addresses():
    assert sandbox.validate_resolvers(["1.1.1.1", "2620:fe::fe"]) == ["1.1.1.1", "2620:fe::fe"]
    with pytest.raises(SandboxError, match="192.168.0.0/16"):
        sandbox.validate_resolvers(["192.168.1.1"])
    with pytest.raises(SandboxError, match="not an IP address"):
        sandbox.validate_resolvers(["dns.example"])
    with pytest.raises(SandboxError, match="at least one"):
        sandbox.validate_resolvers([])


# --- paths --------------------------------------------------------------------


def test_build_paths_put_staging_beside_the_overlay():
    paths = sandbox.build_paths("maps", "/var/lib/left4me/", "f00d")
    assert paths.overlay == "/var/lib/left4me/overlays/maps"
    assert paths.build_dir == "/var/lib/left4me/overlays/.maps.build-f00d"
    assert paths.staging == "/var/lib/left4me/overlays/.maps.build-f00d/overlay"
    assert os.path.dirname(os.path.dirname(paths.staging)) == os.path.dirname(paths.overlay)
    assert paths.lock == "/var/lib/left4me/overlays/.maps.lock"


@pytest.mark.parametrize(("state_dir", "token"), [("relative", "a"), ("/x", "../a"), ("/x", "")])
def test_build_paths_refuse_bad_input(state_dir, token):
    with pytest.raises(SandboxError):
        sandbox.build_paths("maps", state_dir, token)


# --- the property list --------------------------------------------------------

REQUIRED = {
    "Slice": "l4d2-build.slice",
    "User": "left4me",
    "Group": "left4me",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "PrivateUsers": "yes",
    "RestrictSUIDSGID": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "UMask": "0022",
    "MemoryMax": "2G",
    "TasksMax": "256",
    "CPUQuota": "100%",
    "RuntimeMaxSec": "3600",
}


@pytest.mark.parametrize(("name", "value"), sorted(REQUIRED.items()))
def test_property_list_has_directive(name, value):
    assert values(props_for(), name) == [value]


def test_system_call_filter_is_the_service_allow_list_minus_privileged_calls():
    assert values(props_for(), "SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert values(props_for(), "SystemCallErrorNumber") == ["EPERM"]


def test_only_the_staging_dir_is_writable_at_overlay():
    props = props_for()
    assert values(props, "BindPaths") == [
        "/var/lib/left4me/overlays/.maps.build-abc123/overlay:/overlay"]
    assert values(props, "ReadWritePaths") == []
    assert "/var/lib/left4me/overlays/.maps.build-abc123/script:/run/left4me-build/script" in (
        values(props, "BindReadOnlyPaths"))


def test_public_resolv_conf_is_bound_over_the_hosts():
    assert ("/var/lib/left4me/overlays/.maps.build-abc123/resolv.conf:/etc/resolv.conf"
            in values(props_for(), "BindReadOnlyPaths"))


def test_state_and_config_are_masked_with_empty_tmpfs():
    masks = values(props_for(), "TemporaryFileSystem")[0].split()
    assert "/var/lib" in masks and "/etc/left4me" in masks and "/run" in masks


def test_masks_cover_a_state_dir_outside_var_lib_and_drop_nested_ones():
    paths = sandbox.build_paths("maps", "/srv/left4me", "a")
    props = sandbox.sandbox_properties(paths, "left4me", "left4me", sandbox.Limits(),
                                       masked_paths=["/etc/left4me", "/var/lib/x"],
                                       state_dir="/srv/left4me")
    assert values(props, "TemporaryFileSystem") == ["/var/lib /run /srv/left4me /etc/left4me",
                                                    sandbox.PRIVATE_SHM]


def test_each_build_gets_an_empty_dev_shm_of_its_own():
    """PrivateDevices= alone binds the host's /dev/shm, where every unit of the runtime uid
    could leave files for the next tenant's build or server to read."""
    shm = "/dev/shm:mode=1777,nosuid,nodev,noexec"
    assert values(props_for(), "TemporaryFileSystem")[1] == shm


@pytest.mark.parametrize("bad", ["relative", "/with space", "/a:b"])
def test_bad_masked_paths_are_refused(bad):
    with pytest.raises(SandboxError, match="masked path"):
        props_for(masked_paths=[bad])


DENIED = ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8",
          "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]


@pytest.mark.parametrize("network", DENIED)
def test_egress_deny_list_names(network):
    assert network in [n for n, _why in sandbox.DENIED_NETWORKS]


@pytest.mark.parametrize("network", DENIED)
def test_egress_to_denied_range_is_outside_the_allow_list(network):
    allowed = [ipaddress.ip_network(n) for n in values(props_for(), "IPAddressAllow")[0].split()]
    denied = ipaddress.ip_network(network)
    assert not any(a.overlaps(denied) for a in allowed if a.version == denied.version)


def test_egress_fails_closed_and_never_allows_any():
    props = props_for()
    assert values(props, "IPAddressDeny") == ["any"]
    (allow,) = values(props, "IPAddressAllow")
    assert "any" not in allow.split() and "0.0.0.0/0" not in allow and "::/0" not in allow


@pytest.mark.parametrize("address", ["203.0.113.10", "1.1.1.1", "8.8.8.8", "172.32.0.1",
                                     "100.128.0.1", "223.255.255.255", "2606:4700:4700::1111"])
def test_public_addresses_are_in_the_allow_list(address):
    ip = ipaddress.ip_address(address)
    allowed = [ipaddress.ip_network(n) for n in sandbox.public_networks()]
    assert any(ip in n for n in allowed if n.version == ip.version)


def test_allow_list_is_the_exact_complement_of_the_ipv4_deny_list():
    allowed = [ipaddress.ip_network(n) for n in sandbox.public_networks() if ":" not in n]
    denied = [ipaddress.ip_network(n) for n, _why in sandbox.DENIED_NETWORKS if ":" not in n]
    assert sum(n.num_addresses for n in allowed) + sum(n.num_addresses for n in denied) == 2**32


IP_JSON = """[
 {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"},
                                {"family": "inet6", "local": "::1"}]},
 {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "198.51.100.7"},
                                  {"family": "inet6", "local": "2001:db8::7"},
                                  {"family": "inet6", "local": "fe80::1"}]},
 {"ifname": "eth1"}
]"""


def test_own_addresses_reads_every_address_of_ip_json():
    assert sandbox.own_addresses(IP_JSON) == ["127.0.0.1/32", "198.51.100.7/32", "2001:db8::7/128",
                                              "::1/128", "fe80::1/128"]


@pytest.mark.parametrize("text", ["", "not json", '{"ifname": 1}', '[{"addr_info": [1]}]'])
def test_own_addresses_refuses_what_it_cannot_read(text):
    with pytest.raises(SandboxError, match="cannot read the host's addresses"):
        sandbox.own_addresses(text)


def test_the_hosts_own_public_addresses_are_left_out_of_the_allow_list():
    """Reached over lo, the host's public address would skip its firewall's eth0 rules."""
    own = sandbox.own_addresses(IP_JSON)
    (allow,) = values(props_for(host_addresses=own), "IPAddressAllow")
    allowed = [ipaddress.ip_network(n) for n in allow.split()]
    for address in ("198.51.100.7", "2001:db8::7"):
        ip = ipaddress.ip_address(address)
        assert not any(ip in n for n in allowed if n.version == ip.version), address
    for neighbour in ("198.51.100.6", "198.51.100.8", "2001:db8::8", "1.1.1.1"):
        ip = ipaddress.ip_address(neighbour)
        assert any(ip in n for n in allowed if n.version == ip.version), neighbour
    ipv4 = [n for n in allowed if n.version == 4]
    assert sum(n.num_addresses for n in ipv4) == sum(
        n.num_addresses for n in map(ipaddress.ip_network, sandbox.public_networks())
        if n.version == 4) - 1


def test_limits_reach_the_property_list():
    paths = sandbox.build_paths("maps", "/var/lib/left4me", "a")
    limits = sandbox.Limits(memory_max="512M", tasks_max=32, cpu_quota="50%", runtime_max_sec=60)
    props = sandbox.sandbox_properties(paths, "left4me", "left4me", limits)
    assert [values(props, n) for n in ("MemoryMax", "TasksMax", "CPUQuota", "RuntimeMaxSec")] == [
        ["512M"], ["32"], ["50%"], ["60"]]


def test_environment_file_only_when_there_is_an_environment():
    assert values(props_for(), "EnvironmentFile") == []
    assert values(props_for(with_environment=True), "EnvironmentFile") == [
        "/var/lib/left4me/overlays/.maps.build-abc123/environment"]


def test_result_marker_carries_the_token():
    (stop_post,) = values(props_for(), "ExecStopPost")
    assert "left4me-build-result:abc123 $$SERVICE_RESULT" in stop_post


@pytest.mark.parametrize("user", ["root; rm", "", "A"])
def test_bad_user_names_are_refused(user):
    paths = sandbox.build_paths("maps", "/var/lib/left4me", "a")
    with pytest.raises(SandboxError, match="user"):
        sandbox.sandbox_properties(paths, user, "left4me", sandbox.Limits())


def test_systemd_run_argv():
    argv = sandbox.systemd_run_argv(props_for(), "left4me-build-maps.service")
    assert argv[:6] == ["systemd-run", "--pipe", "--wait", "--collect", "--quiet",
                        "--unit=left4me-build-maps.service"]
    assert "--property=UMask=0022" in argv
    assert argv[-4:] == ["--", "/bin/sh", "-c", "exec /run/left4me-build/script"]


def test_rendered_unit_has_every_property():
    props = props_for()
    text = sandbox.render_unit(props, ["/bin/sleep", "300"])
    for name, value in props:
        assert f"{name}={value}\n" in text
    assert "ExecStart=/bin/sleep 300\n" in text
    assert text.index("[Unit]") < text.index("Description=") < text.index("[Service]")


# --- files handed to the sandbox ---------------------------------------------


def test_resolv_conf_names_the_resolvers():
    text = sandbox.resolv_conf_text(["1.1.1.1", "2620:fe::fe"])
    assert "nameserver 1.1.1.1\nnameserver 2620:fe::fe\n" in text


def test_environment_file_escapes_what_systemd_would_interpret():
    text = sandbox.environment_file_text({"B": 'a"b\\c$HOME`x`', "A": "plain"})
    assert text == 'A="plain"\nB="a\\"b\\\\c\\$HOME\\`x\\`"\n'
    assert sandbox.environment_file_text({}) == ""


def test_split_result_takes_only_the_tokened_marker():
    output = ("hello\nleft4me-build-result:other success\n"
              "left4me-build-result:abc123 timeout\n")
    text, result = sandbox.split_result(output, "abc123")
    assert result == "timeout"
    assert text == "hello\nleft4me-build-result:other success\n"
    assert sandbox.split_result("no marker\n", "abc123") == ("no marker\n", "")


def test_output_tail():
    assert sandbox.output_tail("a\nb\nc\n", 2) == ["b", "c"]
    assert sandbox.output_tail("a\nb\n", 0) == []


@pytest.mark.parametrize(("result", "rc", "expected"), [
    ("timeout", 1, "RuntimeMaxSec=60"), ("oom-kill", 1, "MemoryMax"),
    ("signal", 2, "signal"), ("exit-code", 3, "status 3"),
])
def test_describe_result(result, rc, expected):
    assert expected in sandbox.describe_result(result, rc, 60)


# --- the tree -----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "left4dead2" / "addons").mkdir(parents=True)
    (root / "left4dead2" / "cfg.txt").write_text("sv_maxrate 0\n")
    (root / "left4dead2" / "addons" / "map.vpk").write_bytes(b"VPK" * 100)
    os.symlink("../cfg.txt", root / "left4dead2" / "addons" / "link")
    return root


def test_manifest_digest_is_stable(tree, tmp_path):
    first = sandbox.manifest_digest(sandbox.tree_manifest(str(tree)))
    assert first == sandbox.manifest_digest(sandbox.tree_manifest(str(tree)))
    assert sandbox.tree_manifest(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("change", ["content", "mode", "link", "new file", "removed"])
def test_manifest_digest_notices(tree, change):
    before = sandbox.manifest_digest(sandbox.tree_manifest(str(tree)))
    cfg = tree / "left4dead2" / "cfg.txt"
    if change == "content":
        cfg.write_text("sv_maxrate 1\n")
    elif change == "mode":
        cfg.chmod(0o600)
    elif change == "link":
        (tree / "left4dead2" / "addons" / "link").unlink()
        os.symlink("../other", tree / "left4dead2" / "addons" / "link")
    elif change == "new file":
        (tree / "new").write_text("")
    else:
        (tree / "left4dead2" / "addons" / "map.vpk").unlink()
    assert sandbox.manifest_digest(sandbox.tree_manifest(str(tree))) != before


def test_manifest_never_opens_fifos_or_follows_links(tree, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    os.mkfifo(tree / "fifo")
    os.symlink(str(secret), tree / "leak")
    manifest = sandbox.tree_manifest(str(tree))  # would block forever on the FIFO
    assert manifest["fifo"].startswith("special ")
    assert manifest["leak"] == f"link {secret}"


def test_manifest_text_is_capped(tree):
    text = sandbox.manifest_text(sandbox.tree_manifest(str(tree)), max_lines=2)
    assert text.count("\n") == 3 and "... and 3 more entries" in text


def test_make_world_readable(tree, tmp_path):
    private_dir = tree / "private"
    private_dir.mkdir(mode=0o700)
    private_file = private_dir / "f"
    private_file.write_text("x")
    private_file.chmod(0o600)
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o600)
    os.symlink(str(outside), tree / "to-outside")
    assert sandbox.make_world_readable(str(tree)) >= 2
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o705
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o604
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600, "symlinks are not followed"
    assert sandbox.make_world_readable(str(tree)) == 0


@pytest.mark.parametrize(("mode", "is_dir", "expected"), [
    (0o600, False, 0o604), (0o700, True, 0o705), (0o755, True, 0o755), (0o750, False, 0o754),
])
def test_world_readable_mode(mode, is_dir, expected):
    assert sandbox.world_readable_mode(mode, is_dir) == expected


def test_swap_replaces_the_overlay_and_keeps_the_old_tree_aside(tmp_path):
    overlay, staging, retired = tmp_path / "maps", tmp_path / "staging", tmp_path / "retired"
    overlay.mkdir()
    (overlay / "old").write_text("old")
    staging.mkdir()
    (staging / "new").write_text("new")
    sandbox.swap_into_place(str(staging), str(overlay), str(retired))
    assert sorted(os.listdir(overlay)) == ["new"]
    assert sorted(os.listdir(retired)) == ["old"]
    assert not staging.exists()


def test_swap_into_a_missing_overlay(tmp_path):
    overlay, staging = tmp_path / "maps", tmp_path / "staging"
    staging.mkdir()
    sandbox.swap_into_place(str(staging), str(overlay), str(tmp_path / "retired"))
    assert overlay.is_dir() and not (tmp_path / "retired").exists()


def test_lock_refuses_a_second_holder(tmp_path):
    lock = str(tmp_path / ".maps.lock")
    with sandbox.overlay_lock(lock):
        second = sandbox.overlay_lock(lock)
        with pytest.raises(SandboxError, match="another build"):
            second.__enter__()
    with sandbox.overlay_lock(lock):
        pass


def test_stale_and_retired_dirs_of_one_overlay_only(tmp_path):
    for name in (".maps.build-1", ".maps.build-2", ".mapsx.build-1", ".maps.retired-1", "maps"):
        (tmp_path / name).mkdir()
    assert [os.path.basename(p) for p in sandbox.stale_build_dirs(str(tmp_path), "maps")] == [
        ".maps.build-1", ".maps.build-2"]
    assert [os.path.basename(p) for p in sandbox.retired_dirs(str(tmp_path), "maps")] == [
        ".maps.retired-1"]
    assert sandbox.stale_build_dirs(str(tmp_path / "missing"), "maps") == []


MOUNTINFO = (
    "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "90 25 0:50 / /var/lib/left4me/runtime/a/merged rw shared:40 - overlay overlay "
    "rw,lowerdir+=/var/lib/left4me/overlays/maps,lowerdir+=/var/lib/left4me/installation,"
    "upperdir=/var/lib/left4me/runtime/a/upper,workdir=/var/lib/left4me/runtime/a/work\n"
    "91 25 0:51 / /var/lib/left4me/runtime/b/merged rw shared:41 - overlay overlay "
    "rw,lowerdir=/var/lib/left4me/overlays/maps2:/var/lib/left4me/installation,"
    "upperdir=/u,workdir=/w\n"
)


@pytest.mark.parametrize(("overlay", "expected"), [
    ("/var/lib/left4me/overlays/maps", ["/var/lib/left4me/runtime/a/merged"]),
    ("/var/lib/left4me/overlays/maps2", ["/var/lib/left4me/runtime/b/merged"]),
    ("/var/lib/left4me/overlays/tickrate", []),
])
def test_mounts_using(overlay, expected):
    assert sandbox.mounts_using(overlay, MOUNTINFO) == expected


# --- bounded build output ------------------------------------------------------------


@pytest.mark.parametrize(("lines", "width", "asked"), [
    (1000, 10, 50),     # many short lines: the line count bounds it
    (1000, 10, 64),
    (100, 1000, 50),    # long lines: the byte budget bounds it
    (1, 100_000, 50),   # one huge line: cut, its end kept
])
def test_output_tail_never_exceeds_64_lines_or_8_kib(lines, width, asked):
    text = "".join(f"{i:06d}" + "x" * width + "\n" for i in range(lines))
    tail = sandbox.output_tail(text, asked)
    assert 0 < len(tail) <= min(asked, sandbox.OUTPUT_MAX_LINES)
    assert sum(len(line.encode()) + 1 for line in tail) <= sandbox.OUTPUT_MAX_BYTES
    assert tail[-1].endswith("x" * min(width, 100)), "the newest output is kept"
    if lines == 1:
        assert tail[0].startswith("...")


@pytest.mark.parametrize("bad", [-1, 65, 10_000, True, "5"])
def test_output_lines_above_the_bound_are_refused(bad):
    with pytest.raises(sandbox.SandboxError, match="0..64"):
        sandbox.validate_output_lines(bad)


def test_keep_tail_keeps_the_newest_bytes():
    assert sandbox.keep_tail(b"abcdef", 4) == b"cdef"
    assert sandbox.keep_tail(b"ab", 4) == b"ab"


# --- the script is read with the runtime user's rights ------------------------------------

NOBODY = 65534


@pytest.fixture
def readable_dir():
    """A directory every user may enter (pytest's tmp_path is root's own, 0700)."""
    import tempfile

    path = pathlib.Path(tempfile.mkdtemp(prefix="left4me-script-"))
    path.chmod(0o755)
    yield path
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_a_script_the_user_may_read_is_read(readable_dir):
    script = readable_dir / "build.sh"
    script.write_text("#!/bin/sh\necho built\n")
    script.chmod(0o644)
    text = sandbox.read_script_as(str(script), NOBODY, NOBODY, [])
    assert text == "#!/bin/sh\necho built\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
@pytest.mark.parametrize(("mode", "why"), [(0o600, "Permission denied"),
                                           (0o640, "Permission denied")])
def test_a_root_only_file_is_refused_and_none_of_it_shown(readable_dir, mode, why):
    secret = readable_dir / "shadow"
    secret.write_text("root:$y$j9T$secret-hash-never-shown:19000:0:99999:7:::\n")
    secret.chmod(mode)
    with pytest.raises(sandbox.SandboxError) as refused:
        sandbox.read_script_as(str(secret), NOBODY, NOBODY, [])
    assert f"cannot read the build script {secret} as the runtime user (uid {NOBODY}):" \
        f" {why}" in str(refused.value)
    assert "secret-hash" not in str(refused.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
@pytest.mark.parametrize(("path", "why"), [("/dev/zero", "not a regular file"),
                                           ("relative/build.sh", "must be an absolute path")])
def test_what_is_not_a_script_file_is_refused(path, why):
    with pytest.raises(sandbox.SandboxError, match=why):
        sandbox.read_script_as(path, NOBODY, NOBODY, [])


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_an_oversized_script_is_refused(readable_dir):
    big = readable_dir / "big.sh"
    big.write_bytes(b"#" * 2048)
    big.chmod(0o644)
    with pytest.raises(sandbox.SandboxError, match="larger than 1024 bytes"):
        sandbox.read_script_as(str(big), NOBODY, NOBODY, [], max_bytes=1024)


def _live(**kwargs) -> tuple[sandbox.LiveLog, list[bytes]]:
    writes: list[bytes] = []
    return sandbox.LiveLog(writes.append, **kwargs), writes


def test_the_live_log_gets_whole_lines_as_they_come():
    live, writes = _live()
    live.feed(b"fetching map 1\nfetch")
    assert writes == [b"fetching map 1\n"]  # the half line waits for its end
    live.feed(b"ing map 2\n")
    live.feed(b"done")
    live.close()  # the last line without a newline still shows
    assert writes == [b"fetching map 1\n", b"fetching map 2\n", b"done\n"]


def test_the_live_log_hides_the_result_marker_and_nul_bytes():
    live, writes = _live(hidden_prefix=b"left4me-build-result:tok")
    live.feed(b"a\0b\nleft4me-build-result:tok success\n")
    live.close()
    assert b"".join(writes) == b"ab\n"


def test_a_line_that_never_ends_is_written_in_pieces():
    live, writes = _live(line_max=10)
    live.feed(b"x" * 25)
    assert writes == [b"x" * 10 + b"\n" + b"x" * 10 + b"\n"]
    live.close()
    assert writes[-1] == b"xxxxx\n"


def test_the_live_log_stops_at_its_size_with_a_note():
    live, writes = _live(max_bytes=len(sandbox.LIVE_LOG_FULL_NOTE) + 20)
    for n in range(100):
        live.feed(b"line %02d\n" % n)
    text = b"".join(writes)
    assert text == b"line 00\nline 01\n" + sandbox.LIVE_LOG_FULL_NOTE
    assert live.full and live.written == len(text) <= len(sandbox.LIVE_LOG_FULL_NOTE) + 20


def test_the_live_log_is_root_only_and_emptied_for_a_new_build(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chowns the live log to root: needs root")
    path = tmp_path / ".maps.log"
    path.write_text("the previous build's output\n")
    path.chmod(0o644)
    fd = sandbox.open_live_log(str(path))
    sandbox.write_all(fd, b"new\n")
    os.close(fd)
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == 0


def test_the_live_log_never_follows_a_link(tmp_path):
    (tmp_path / "target").write_text("keep\n")
    (tmp_path / ".maps.log").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        sandbox.open_live_log(str(tmp_path / ".maps.log"))
    assert (tmp_path / "target").read_text() == "keep\n"


def test_build_paths_put_the_live_log_beside_the_overlay():
    assert sandbox.build_paths("maps", "/var/lib/left4me", "ab").live_log == \
        "/var/lib/left4me/overlays/.maps.log"
