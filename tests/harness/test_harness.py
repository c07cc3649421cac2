"""The test-host harness itself: real systemd hosts, reached like production, torn down clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testhosts import host, paths


def ssh(target: host.TestHost, command: str, **options: str) -> subprocess.CompletedProcess[str]:
    extra = [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
    return subprocess.run(
        ["ssh", "-F", target.ssh_config, *extra, target.name, command],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_host_runs_systemd_as_pid_1(booted_testinfra):
    assert booted_testinfra.check_output("ps -o comm= -p 1") == "systemd"
    state = booted_testinfra.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded")
    assert booted_testinfra.check_output("systemctl --version").startswith("systemd 257")


def test_ssh_takes_the_admin_key_and_sudo(booted_host):
    result = ssh(booted_host, "sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_ssh_refuses_a_key_it_was_not_given(booted_host, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    result = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(stranger), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "IdentityAgent=none",
         "-o", f"UserKnownHostsFile={paths.known_hosts()}", "-o", "StrictHostKeyChecking=yes",
         f"{booted_host.user}@{booted_host.address}", "true"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_a_host_can_attach_an_image_to_a_loop_device(booted_host):
    """Each server's writes filesystem is a loop-mounted image (role game_host): a host's
    root gets the loop device the kernel hands out, though hosts share this machine's."""
    result = ssh(booted_host, "sudo -n sh -c 'truncate -s 1M /root/loop.img"
                 " && dev=$(losetup -f --show /root/loop.img) && test -b \"$dev\""
                 " && losetup -d \"$dev\" && echo \"$dev\"; rm -f /root/loop.img'")
    assert result.returncode == 0 and result.stdout.startswith("/dev/loop"), (
        f"no loop device inside the host: {result.stdout} {result.stderr}")


def test_host_has_no_route_off_this_machine(booted_host):
    # Read from here in the host's network namespace: the bare host has no iproute2.
    for family in ("-4", "-6"):
        routes = subprocess.run(
            ["ip", family, "-n", host.netns_name(booted_host.name), "route", "show", "default"],
            capture_output=True, text=True, check=True).stdout
        assert routes == "", f"a test host must not route out: {routes}"


@pytest.fixture(scope="module")
def fresh_host():
    """A host of this module's own, never converged: the session's booted_host may have been
    converged by earlier tests (they share it), so bareness is checked here."""
    extra = host.create(host.unique_name("pb"))
    yield extra
    host.destroy(extra.name)


def test_host_starts_as_bare_as_a_fresh_server(fresh_host):
    # What the roles install must not be there before a converge, or a role that forgets
    # a package would pass. (dpkg-query, not the files: a package is what a role installs.)
    for package in ("curl", "7zip", "ca-certificates", "python3-apt", "file", "acl"):
        status = ssh(fresh_host, f"dpkg-query -W -f='${{Status}}' {package}").stdout
        assert "installed" not in status.replace("not-installed", ""), (
            f"{package} is in the test image: {status}")


def test_host_installs_only_from_the_local_repository(fresh_host):
    update = ssh(fresh_host, "sudo apt-get update")
    assert update.returncode == 0, update.stdout + update.stderr
    uris = ssh(fresh_host, "apt-get indextargets --format '$(URI)'").stdout.split()
    assert uris and all(u.startswith("file:/srv/left4me-apt/") for u in uris), uris
    # A dry run, so the session's host stays bare for the other tests.
    plan = ssh(fresh_host, "apt-get --simulate install curl 7zip lib32gcc-s1")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Inst curl " in plan.stdout and "left4me-testhosts" in plan.stdout


def test_reboot_inside_brings_the_host_back(booted_host):
    host.reboot(booted_host)
    assert ssh(booted_host, "systemctl is-system-running --wait").stdout.strip() in (
        "running", "degraded")


def test_two_hosts_run_side_by_side(booted_host, fresh_host):
    assert booted_host.address != fresh_host.address
    for target in (booted_host, fresh_host):
        result = ssh(target, "hostname")
        assert result.stdout.strip() == target.name, result.stderr


def test_a_unit_stopped_on_one_host_keeps_running_on_another(booted_host, fresh_host):
    """Each host's systemd has a cgroup tree of its own: stopping (or killing) a unit on one
    host never reaches the same-named unit's processes on another."""
    unit = "left4me-cgroup-probe.service"
    for target in (booted_host, fresh_host):
        target.nsenter("systemd-run", f"--unit={unit}", "sleep", "600")
    try:
        booted_host.nsenter("systemctl", "stop", unit)
        assert fresh_host.nsenter("systemctl", "is-active", unit, check=False).strip() == \
            "active", fresh_host.nsenter("journalctl", "-u", unit, "--no-pager", check=False)
        cgroups = [next(line for line in Path(f"/proc/{t.init_pid()}/cgroup").read_text()
                        .splitlines() if line.startswith("0::"))
                   for t in (booted_host, fresh_host)]
        assert cgroups[0] != cgroups[1], cgroups
    finally:
        for target in (booted_host, fresh_host):
            target.nsenter("systemctl", "stop", unit, check=False)


def test_teardown_leaves_nothing_behind(booted_host):
    doomed = host.create(host.unique_name("pc"))
    assert host.leftovers(doomed.name), "a live host should be visible to the leak check"
    host.destroy(doomed.name)
    assert host.leftovers(doomed.name) == []
    assert ssh(booted_host, "true").returncode == 0, "destroying one host left others alone"
