"""What role game_host promises on a converged host: packages, kernel settings, slices,
the root-only mount helper (no sudo rule), steamcmd and the game install."""

import hashlib
import os
import pathlib

import pytest
import vdf

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path.cwd()))
STATE = "/var/lib/left4me"
LIBEXEC = "/usr/local/libexec/left4me"
UNITS = "/usr/local/lib/systemd/system"
HELPER = f"/usr/bin/python3 -I {LIBEXEC}/left4me-mount"
HOME = "/home/left4me"


def as_runtime_user(host, command):
    """The runtime user asking sudo without a password (an operator's `sudo -u left4me`
    shell, or a tenant's code were NoNewPrivileges ever off)."""
    return host.run(f"sudo -u left4me sudo -n {command}")


# --- packages ------------------------------------------------------------------


@pytest.mark.parametrize("package", ["7zip", "coreutils", "python3", "sudo"])
def test_package_is_installed(host, package):
    assert host.package(package).is_installed


def test_build_tools_run(host):
    assert host.run("7z i").rc == 0
    assert host.run("echo x | md5sum").stdout.startswith("401b30e3b8b5d629635a5c613cdb7919")


# --- kernel settings -------------------------------------------------------------


def test_ptrace_scope_is_persisted(host):
    conf = host.file("/etc/sysctl.d/60-left4me.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert "kernel.yama.ptrace_scope = 2" in conf.content_string.splitlines()


def test_ptrace_scope_is_applied(host):
    live = host.file("/proc/sys/kernel/yama/ptrace_scope")
    if not live.exists:
        pytest.skip("NOT ENFORCED kernel.yama.ptrace_scope=2: this host's kernel has no Yama"
                    " LSM (no /proc/sys/kernel/yama); the role reports it, see test_check_mode")
    if live.content_string.strip() != "2" and "ro" in host.run(
            "findmnt -no OPTIONS /proc/sys").stdout.split(","):
        pytest.skip("NOT ENFORCED kernel.yama.ptrace_scope=2: /proc/sys is read-only in this"
                    " container; the role reports it, see test_check_mode")
    assert live.content_string.strip() == "2"


# --- slices ----------------------------------------------------------------------


def slice_properties(host, name):
    shown = host.check_output(
        f"systemctl show {name} -p LoadState -p FragmentPath -p CPUWeight -p IOWeight")
    return dict(line.split("=", 1) for line in shown.splitlines())


def test_build_slice_is_loaded_with_low_weights(host):
    props = slice_properties(host, "l4d2-build.slice")
    assert props["LoadState"] == "loaded"
    assert props["FragmentPath"] == f"{UNITS}/l4d2-build.slice"
    assert (props["CPUWeight"], props["IOWeight"]) == ("10", "10")


def test_game_slice_is_loaded(host):
    props = slice_properties(host, "l4d2-game.slice")
    assert props["LoadState"] == "loaded"
    assert props["FragmentPath"] == f"{UNITS}/l4d2-game.slice"


def test_servers_and_builds_together_cannot_take_the_host(host):
    memory = int(host.check_output("awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo"))
    wanted = {"l4d2.slice": (0.90, "8192"), "l4d2-game.slice": (0.85, "7168"),
              "l4d2-build.slice": (0.25, "1024")}
    for name, (share, tasks) in wanted.items():
        shown = host.check_output(
            f"systemctl show {name} -p MemoryMax -p TasksMax -p FragmentPath")
        props = dict(line.split("=", 1) for line in shown.splitlines())
        assert props["FragmentPath"] == f"{UNITS}/{name}", name
        assert props["TasksMax"] == tasks, name
        # systemd turns the percentage into bytes of this host's RAM, rounded to pages.
        assert abs(int(props["MemoryMax"]) - share * memory) < 1 << 20, (name, props)
    assert host.check_output("systemctl show l4d2.slice -p MemorySwapMax --value") == "0"


@pytest.mark.parametrize("name", ["l4d2", "l4d2-game", "l4d2-build"])
def test_every_slice_directive_says_why(host, name):
    lines = host.file(f"{UNITS}/{name}.slice").content_string.splitlines()
    section = lines[lines.index("[Slice]") + 1:]
    directives = [i for i, line in enumerate(section) if line and not line.startswith("#")]
    assert directives
    for index in directives:
        assert section[index - 1].startswith("# "), f"{section[index]} has no comment"


def test_build_slice_weights_bite(host):
    controllers = host.file("/sys/fs/cgroup/cgroup.controllers").content_string.split()
    missing = [c for c in ("cpu", "io") if c not in controllers]
    if missing:
        pytest.skip("NOT ENFORCED CPUWeight=10, IOWeight=10 (l4d2-build.slice): cgroup"
                    f" controller(s) {', '.join(missing)} not delegated to this host")
    weight = host.check_output(
        "systemd-run --quiet --wait --pipe --slice=l4d2-build.slice"
        " cat /sys/fs/cgroup/l4d2.slice/l4d2-build.slice/cpu.weight")
    assert weight.strip() == "10"


# --- the privileged helper, root only ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode"),
    [(LIBEXEC, 0o755), (f"{LIBEXEC}/left4me-mount", 0o755),
     (f"{LIBEXEC}/left4me_mount.py", 0o644), (f"{LIBEXEC}/left4me_common.py", 0o644),
     (f"{LIBEXEC}/left4me_layout.py", 0o644)],
)
def test_helpers_are_root_owned_and_not_writable_by_others(host, path, mode):
    target = host.file(path)
    assert (target.user, target.group) == ("root", "root")
    assert target.mode == mode, f"{path} is {oct(target.mode)}"


def test_helper_library_is_the_collections_mount_code(host):
    local = PROJECT.joinpath("collections/ansible_collections/left4me/l4d2",
                             "plugins/module_utils/_mount.py")
    installed = host.file(f"{LIBEXEC}/left4me_mount.py").sha256sum
    assert installed == hashlib.sha256(local.read_bytes()).hexdigest()


def test_no_sudo_rule_lets_the_runtime_user_run_the_helper(host):
    # The units run it as root themselves (ExecStartPre=+): a rule would only serve a
    # process of the runtime uid, letting it mount or unmount any instance.
    assert not host.file("/etc/sudoers.d/left4me").exists
    for command in (f"{HELPER} umount probe", f"{HELPER} mount probe",
                    "/bin/sh -c id"):
        result = as_runtime_user(host, command)
        assert result.rc == 1
        assert "a password is required" in result.stderr, result.stderr


# --- steamcmd and the game install ------------------------------------------------------


def test_steamcmd_home_belongs_to_the_runtime_user(host):
    for name in ("steamcmd.sh", "linux32/steamclient.so", "linux64/steamclient.so"):
        assert host.file(f"{STATE}/steam/{name}").user == "left4me"


def test_install_tree_is_owned_by_the_runtime_user_and_has_a_build(host):
    # installation is root's link to builds/current, root's link to the build (side by side)
    assert host.check_output(f"readlink {STATE}/installation") == "builds/current"
    current = host.file(f"{STATE}/builds/current")
    # stat without -L: the link's own owner (testinfra's File.user follows the link)
    assert current.is_symlink
    assert host.check_output(f"stat -c %U {STATE}/builds/current {STATE}/installation") \
        == "root\nroot"
    root = host.file(current.linked_to)  # resolved: builds/N
    assert (root.user, root.mode) == ("left4me", 0o755)
    for name in ("srcds_run", "srcds_linux", "left4dead2/steam.inf", "left4dead2/pak01_dir.vpk"):
        assert host.file(f"{STATE}/installation/{name}").user == "left4me", name
    assert host.file(f"{STATE}/installation/srcds_run").mode & 0o111
    manifest = host.file(f"{STATE}/installation/steamapps/appmanifest_222860.acf")
    app = vdf.loads(manifest.content_string)["AppState"]
    assert app["StateFlags"] == "4"
    assert int(app["buildid"]) > 0


@pytest.mark.parametrize(("sdk", "arch", "elf_class"), [("sdk32", "linux32", 1),
                                                         ("sdk64", "linux64", 2)])
def test_steam_sdk_links_resolve_to_steamcmds_client(host, sdk, arch, elf_class):
    link = host.file(f"{HOME}/.steam/{sdk}/steamclient.so")
    assert link.is_symlink
    assert link.linked_to == f"{STATE}/steam/{arch}/steamclient.so"
    assert link.user == "left4me"
    # What srcds does as the runtime user: open the library through the link.
    head = host.check_output(f"sudo -u left4me od -An -tx1 -N5 {HOME}/.steam/{sdk}/steamclient.so")
    assert head.split() == ["7f", "45", "4c", "46", f"0{elf_class}"]


def test_install_log_shows_the_last_run(host):
    log = host.file(f"{STATE}/steam/left4me-install.log")
    assert log.user == "left4me"
    assert "Success! App '222860'" in log.content_string
