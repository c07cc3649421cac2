"""What the four example scripts built, as a game server (or an operator) would see it."""

from __future__ import annotations

import os
import re
import subprocess

OVERLAYS = "/var/lib/left4me/overlays"


def listing(ssh, overlay: str) -> dict[str, tuple[str, str, str]]:
    """path -> (type, mode, owner) for every entry of an overlay."""
    out = ssh.check_output(
        f"cd {OVERLAYS}/{overlay} && find . -mindepth 1 -printf '%p %y %m %u\\n'")
    return {p[2:]: (t, m, u) for p, t, m, u in (line.split() for line in out.splitlines())}


def test_every_entry_is_world_readable_and_owned_by_the_runtime_user(ssh):
    for overlay in ("cedapug", "l4d2center", "competitive", "tickrate"):
        entries = listing(ssh, overlay)
        assert entries, f"{overlay} is empty"
        for path, (kind, mode, owner) in entries.items():
            assert owner == "left4me", f"{overlay}/{path} belongs to {owner}"
            if kind == "l":
                continue
            wanted = 0o005 if kind == "d" else 0o004
            assert int(mode, 8) & wanted == wanted, f"{overlay}/{path} is {mode}"


def test_a_0600_file_from_the_pack_became_readable(ssh):
    # The stand-in pack ships server.cfg as 0600, as tools that broke downloads did.
    assert ssh.file(f"{OVERLAYS}/competitive/left4dead2/cfg/server.cfg").mode == 0o604


def test_cedapug_maps_match_the_source(ssh):
    checked = ssh.run(f"cd {OVERLAYS}/cedapug/left4dead2/addons && "
                      "md5sum --check /srv/standin/cedapug/maplist.txt")
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 2


def test_l4d2center_vpks_are_linked_into_addons(ssh):
    entries = listing(ssh, "l4d2center")
    links = sorted(p for p, (kind, _m, _o) in entries.items() if kind == "l")
    assert links == [f"left4dead2/addons/{c}_{n}.vpk" for c in ("darkblood", "urbanflight")
                     for n in (1, 2)]
    for link in links:
        target = ssh.check_output(f"readlink {OVERLAYS}/l4d2center/{link}")
        assert target.startswith("../../l4d2center/"), "relative, so it resolves in merged/"
        assert ssh.file(f"{OVERLAYS}/l4d2center/{link}").is_file, f"{link} dangles"
    assert not [p for p in entries if p.endswith("README.txt")], "only .vpk files are kept"


def test_tickrate_config_follows_the_tickrate(ssh):
    cfg = ssh.file(f"{OVERLAYS}/tickrate/left4dead2/cfg/tickrate.cfg").content_string
    assert re.search(r"^sv_maxupdaterate 100$", cfg, re.MULTILINE)
    assert ssh.file(f"{OVERLAYS}/tickrate/left4dead2/addons/tickrate_enabler.vdf").is_file


def test_no_staging_directory_is_left_behind(ssh):
    names = ssh.check_output(f"ls -A {OVERLAYS}").split()
    assert not [n for n in names if ".build-" in n or ".retired-" in n], names


def test_check_mode_on_converged_host_reports_no_change(host):
    name = host.backend.get_hostname()
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    run = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "--limit", name, "molecule/sandbox/converge.yml"],
        cwd=project, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = run.stdout[run.stdout.rindex("PLAY RECAP"):]
    assert re.search(rf"{re.escape(name)}\s+:\s+ok=\d+\s+changed=0\s", recap), recap
    assert re.search(r"\sfailed=0\s", recap), recap
