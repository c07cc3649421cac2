# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for the host_read and host_read_drift filters: the game_host role's one read of a
host, and which of its write tasks must run."""

from __future__ import annotations

import pathlib
import sys

import pytest
from ansible.errors import AnsibleFilterError

try:
    from ansible_collections.left4me.l4d2.plugins.filter import host_read as plugin
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.filter import host_read as plugin

# What the read script printed on a converged demo host (raw runs it on a tty: CRLF).
CONVERGED = "\r\n".join([
    "path|directory|root|left4me|0750|/var/lib/left4me",
    "path|directory|left4me|left4me|0755|/var/lib/left4me/overlays",
    "path|directory|left4me|left4me|0700|/home/left4me",
    "path|regular file|root|root|0644|/etc/sysctl.d/60-left4me.conf",
    "sha1|da39a3ee5e6b4b0d3255bfef95601890afd80709  /etc/sysctl.d/60-left4me.conf",
    "group|left4me:x:999:",
    "passwd|left4me:x:999:999::/home/left4me:/usr/sbin/nologin",
    "locked|left4me|yes",
    "package|curl|ii ",
    "package|lib32gcc-s1|ii ",
    "sysctl|kernel.yama.ptrace_scope|writable|2",
    "sysctl|net.ipv4.ip_local_port_range|writable|32768 60999",
    "unit|left4me-upper-check.timer|enabled|active",
    "end|",
]) + "\r\n"

WANTED = {
    "directories": [
        {"path": "/var/lib/left4me", "owner": "root", "group": "left4me", "mode": "0750"},
        {"path": "/var/lib/left4me/overlays", "owner": "left4me", "group": "left4me",
         "mode": 0o755},
    ],
    "groups": ["left4me"],
    "users": [{"name": "left4me", "group": "left4me", "home": "/home/left4me",
               "shell": "/usr/sbin/nologin"}],
    "packages": ["curl", "lib32gcc-s1"],
    "sysctl": {"kernel.yama.ptrace_scope": 2, "net.ipv4.ip_local_port_range": "32768\t60999"},
    "units": ["left4me-upper-check.timer"],
}

NOTHING = {"directories": [], "groups": [], "users": [], "packages": [], "sysctl_apply": [],
           "sysctl_unenforced": [], "units": []}


def drift(stdout, wanted=None):
    return plugin.host_read_drift(plugin.host_read(stdout), WANTED if wanted is None else wanted)


def test_a_converged_host_needs_nothing():
    assert drift(CONVERGED) == NOTHING


def test_the_read_keeps_each_path_with_its_checksum():
    found = plugin.host_read(CONVERGED)
    assert found["paths"]["/etc/sysctl.d/60-left4me.conf"] == {
        "type": "regular file", "owner": "root", "group": "root", "mode": "0644",
        "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}


def test_a_bare_host_needs_everything():
    assert drift("end|\n") == {
        "directories": WANTED["directories"], "groups": ["left4me"], "users": ["left4me"],
        "packages": ["curl", "lib32gcc-s1"], "sysctl_apply": [],
        "sysctl_unenforced": [
            {"key": "kernel.yama.ptrace_scope", "value": "2", "reason": "missing"},
            {"key": "net.ipv4.ip_local_port_range", "value": "32768\t60999",
             "reason": "missing"}],
        "units": ["left4me-upper-check.timer"]}


@pytest.mark.parametrize("line, changed", [
    ("path|directory|root|left4me|0755|/var/lib/left4me", "mode"),
    ("path|directory|root|root|0750|/var/lib/left4me", "group"),
    ("path|directory|left4me|left4me|0750|/var/lib/left4me", "owner"),
    ("path|symbolic link|root|left4me|0777|/var/lib/left4me", "a link where a directory was"),
])
def test_a_directory_that_changed_is_put_back(line, changed):
    stdout = CONVERGED.replace("path|directory|root|left4me|0750|/var/lib/left4me\r", line + "\r")
    assert drift(stdout)["directories"] == WANTED["directories"][:1], changed


@pytest.mark.parametrize("old, new", [
    ("/usr/sbin/nologin", "/bin/bash"),                            # shell
    ("locked|left4me|yes", "locked|left4me|no"),                   # a password was set
    ("left4me:x:999:999::", "left4me:x:999:100::"),                # primary group
    ("::/home/left4me:", "::/srv/left4me:"),                       # home
    ("path|directory|left4me|left4me|0700|/home/left4me", "x|"),   # home directory gone
    ("passwd|left4me", "passwd|someone"),                          # no such user
])
def test_a_user_that_changed_is_put_back(old, new):
    assert drift(CONVERGED.replace(old, new))["users"] == ["left4me"]


def test_a_missing_group_is_created():
    assert drift(CONVERGED.replace("group|left4me:x:999:", ""))["groups"] == ["left4me"]


@pytest.mark.parametrize("status", ["rc ", "un ", "iU "])
def test_a_package_not_fully_installed_is_missing(status):
    assert drift(CONVERGED.replace("package|curl|ii ", f"package|curl|{status}"))[
        "packages"] == ["curl"]


def test_a_package_unknown_to_dpkg_is_missing():
    assert drift(CONVERGED.replace("package|lib32gcc-s1|ii \r\n", ""))["packages"] == [
        "lib32gcc-s1"]


def test_a_writable_setting_that_differs_is_applied():
    stdout = CONVERGED.replace("ptrace_scope|writable|2", "ptrace_scope|writable|1")
    assert drift(stdout)["sysctl_apply"] == ["kernel.yama.ptrace_scope"]


def test_a_read_only_setting_that_differs_is_reported_not_applied():
    stdout = CONVERGED.replace("ptrace_scope|writable|2", "ptrace_scope|read-only|1")
    result = drift(stdout)
    assert result["sysctl_apply"] == []
    assert result["sysctl_unenforced"] == [
        {"key": "kernel.yama.ptrace_scope", "value": "2", "reason": "read-only"}]


def test_a_read_only_setting_that_matches_is_not_reported():
    stdout = CONVERGED.replace("ptrace_scope|writable|2", "ptrace_scope|read-only|2")
    assert drift(stdout) == NOTHING


@pytest.mark.parametrize("state", ["disabled|active", "enabled|inactive", "masked|failed"])
def test_a_unit_not_enabled_and_running_is_started(state):
    stdout = CONVERGED.replace("timer|enabled|active", f"timer|{state}")
    assert drift(stdout)["units"] == ["left4me-upper-check.timer"]


def test_a_read_that_stopped_early_is_an_error_not_a_bare_host():
    with pytest.raises(AnsibleFilterError, match="stopped before its end"):
        plugin.host_read(CONVERGED.replace("end|", ""))


def test_the_drift_of_something_else_than_a_read_is_an_error():
    with pytest.raises(AnsibleFilterError, match="host_read's answer"):
        plugin.host_read_drift(CONVERGED, WANTED)
