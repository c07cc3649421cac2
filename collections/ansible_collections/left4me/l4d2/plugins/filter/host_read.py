# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One read of everything a role manages on a host, and what of it differs from what the
role wants: the role then runs a write task only for what differs.

The read is one shell script run with ansible.builtin.raw (roles/game_host/templates/
host_read.sh.j2): one SSH exec, where a module call costs a module transfer and a Python
start on the host as well. Each line it prints is ``kind|field|...``; ``host_read`` parses
them, ``host_read_drift`` compares.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The last line of a complete read: without it the script stopped early (or never ran).
END = "end|"


def host_read(stdout):
    """The host as the read script printed it: paths, users, groups, packages, kernel
    settings and units, each keyed by name. Lines of other shapes are ignored."""
    if not isinstance(stdout, str):
        raise AnsibleFilterError("host_read takes the read script's stdout (a string)")
    lines = [line.strip("\r") for line in stdout.splitlines()]
    if END not in lines:
        raise AnsibleFilterError(
            "the host read stopped before its end (no 'end|' line): is /bin/sh there, and"
            f" did sudo succeed? It printed: {stdout[-500:]!r}")
    found = {"paths": {}, "users": {}, "groups": {}, "packages": {}, "sysctl": {},
             "units": {}}
    for line in lines:
        kind, _sep, rest = line.partition("|")
        fields = rest.split("|")
        if kind == "path" and len(fields) >= 5:
            # stat --format='path|%F|%U|%G|%04a|%n': the name last, so it may hold a '|'.
            kind_of_file, owner, group, mode = fields[:4]
            found["paths"]["|".join(fields[4:])] = {
                "type": kind_of_file, "owner": owner, "group": group, "mode": mode}
        elif kind == "sha1" and "  " in rest:
            digest, _sep, path = rest.partition("  ")  # sha1sum's "DIGEST  PATH"
            found["paths"].setdefault(path, {})["sha1"] = digest
        elif kind == "passwd" and rest.count(":") == 6:
            name, _password, uid, gid, _gecos, home, shell = rest.split(":")  # getent passwd's line
            found["users"].setdefault(name, {}).update(
                {"uid": uid, "gid": gid, "home": home, "shell": shell})
        elif kind == "locked" and len(fields) == 2:
            # Whether the shadow password is exactly "!" (the read prints no hash).
            found["users"].setdefault(fields[0], {})["locked"] = fields[1] == "yes"
        elif kind == "group" and rest.count(":") == 3:
            name, _password, gid, _members = rest.split(":")  # getent group's line
            found["groups"][name] = {"gid": gid}
        elif kind == "package" and len(fields) == 2:
            found["packages"][fields[0].split(":")[0]] = fields[1].strip()
        elif kind == "sysctl" and len(fields) == 3:
            found["sysctl"][fields[0]] = {"writable": fields[1] == "writable",
                                          "value": " ".join(fields[2].split())}
        elif kind == "unit" and len(fields) == 3:
            found["units"][fields[0]] = {"enabled": fields[1], "active": fields[2]}
    return found


def _mode(mode):
    """A mode as the read prints it (4 octal digits), from 0o755, '0755' or '755'."""
    if isinstance(mode, int):
        return f"{mode:04o}"
    return str(mode).zfill(4)


def _directory_differs(found, wanted):
    return found["paths"].get(wanted["path"], {}).get("type") != "directory" or any(
        found["paths"][wanted["path"]][key] != value
        for key, value in (("owner", wanted["owner"]), ("group", wanted["group"]),
                           ("mode", _mode(wanted["mode"]))))


def _user_differs(found, user):
    """What ansible.builtin.user would change: a missing user, its primary group, home,
    shell, a password other than "!", or a missing home directory (create_home)."""
    now = found["users"].get(user["name"], {})
    group = found["groups"].get(user["group"], {})
    return (not now.get("uid") or now["gid"] != group.get("gid") or now["home"] != user["home"]
            or now["shell"] != user["shell"] or not now.get("locked")
            or found["paths"].get(user["home"], {}).get("type") != "directory")


def host_read_drift(found, wanted):
    """What of ``wanted`` the host does not have yet, from ``host_read``'s answer.

    ``wanted`` names (each key optional): ``directories`` (path, owner, group, mode),
    ``groups`` (names), ``users`` (name, group, home, shell; password locked "!"),
    ``packages`` (names), ``sysctl`` (key: value) and ``units`` (names to be enabled and
    running). The answer: the directories that differ (in the order given), the groups and
    users to create or change, the packages not installed, the kernel settings to apply
    (``sysctl_apply``: writable and different) and those this host cannot apply
    (``sysctl_unenforced``: key, value and ``reason``: ``read-only`` or ``missing``), and
    the units not enabled and running.
    """
    if not isinstance(found, dict) or "paths" not in found:
        raise AnsibleFilterError("host_read_drift takes host_read's answer as its input")
    unenforced, apply = [], []
    for key, value in wanted.get("sysctl", {}).items():
        now = found["sysctl"].get(key)
        if now is None:
            unenforced.append({"key": key, "value": str(value), "reason": "missing"})
        elif now["value"] != " ".join(str(value).split()):
            if now["writable"]:
                apply.append(key)
            else:
                unenforced.append({"key": key, "value": str(value), "reason": "read-only"})
    return {
        "directories": [d for d in wanted.get("directories", []) if _directory_differs(found, d)],
        "groups": [g for g in wanted.get("groups", []) if g not in found["groups"]],
        "users": [u["name"] for u in wanted.get("users", []) if _user_differs(found, u)],
        "packages": [p for p in wanted.get("packages", [])
                     if not found["packages"].get(p, "").startswith("ii")],
        "sysctl_apply": apply,
        "sysctl_unenforced": unenforced,
        "units": [u for u in wanted.get("units", [])
                  if found["units"].get(u) != {"enabled": "enabled", "active": "active"}],
    }


class FilterModule:
    def filters(self):
        return {"host_read": host_read, "host_read_drift": host_read_drift}
