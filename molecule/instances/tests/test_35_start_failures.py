"""A start that cannot work says why, in the module's own message: the operator should not
have to go and read the journal (or discover a LAN-only server days later)."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest
from conftest import INSTANCES, PLATFORM, PROJECT, a2s_name, ansible, main_pid

STATE = "/var/lib/left4me"
SECRET = "molecule-never-shown-pw"


def adhoc(arguments: dict, become: bool = True):
    flags = ["-b"] if become else []
    return ansible("ansible", PLATFORM, *flags, "-m", "left4me.l4d2.srcds_instance",
                   "-a", json.dumps(arguments))


@pytest.fixture
def instance(srv):
    """Configure (state=present, not started) a throw-away instance; remove it afterwards."""
    made = []

    def configure(name: str, port: int, **settings):
        run = adhoc({"name": name, "port": port, "state": "present", **settings})
        assert run.returncode == 0, run.stdout[-2000:]
        made.append(name)

    yield configure
    for name in made:
        gone = adhoc({"name": name, "state": "absent"})
        assert gone.returncode == 0, gone.stdout[-2000:]
        assert not srv.file(f"{STATE}/runtime/{name}").exists


def test_the_readmes_ad_hoc_example_works(srv, booted):
    readme = (PROJECT / "README.md").read_text()
    documented = re.search(r"`(ansible -i inventories/production HOST [^`]*"
                           r"left4me\.l4d2\.srcds_instance[^`]*)`", readme)
    assert documented, "README.md lost its ad-hoc example"
    argv = shlex.split(documented.group(1))
    # Our inventory and host stand in for the production ones; the rest is as documented.
    argv = argv[3:]  # drop "ansible -i inventories/production"
    argv[0] = PLATFORM
    argv = [a.replace("name=x", "name=coop1") for a in argv]
    before = main_pid(srv, "coop1")
    run = ansible("ansible", *argv)
    assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
    assert main_pid(srv, "coop1") != before
    port, hostname = INSTANCES["coop1"]
    assert a2s_name(booted.address, port, timeout=3) == hostname


def test_without_become_the_module_says_to_use_it(srv):
    before = main_pid(srv, "coop1")
    run = adhoc({"name": "coop1", "state": "restarted"}, become=False)
    assert run.returncode != 0
    assert "srcds_instance needs root: run with become (-b" in run.stdout, run.stdout[-2000:]
    assert "Errno 13" not in run.stdout
    assert main_pid(srv, "coop1") == before


def plain_upper_dir(srv, name: str) -> str:
    """Make NAME an instance from before the cap was a filesystem: its upper dir a plain
    directory, which the mount helper keeps (and counts)."""
    upper = f"{STATE}/runtime/{name}/upper"
    srv.check_output(f"install -d -o left4me -g left4me -m 0755 {upper}")
    return upper


def test_a_tainted_upper_dir_fails_with_the_mount_helpers_reason(srv, instance):
    instance("taint1", 27047, overlays=["demo-coop"])
    upper = plain_upper_dir(srv, "taint1")
    srv.check_output(f"python3 -c \"import os; open('{upper}/left', 'w').close();"
                     f" os.setxattr('{upper}/left', 'user.fuseoverlayfs.origin', b'x')\"")
    run = adhoc({"name": "taint1", "state": "started"})
    assert run.returncode != 0
    assert "left4me-server@taint1.service did not start: left4me-mount: mount taint1:" \
        f" upper dir {upper} was written by fuse-overlayfs" in run.stdout, run.stdout[-2000:]
    assert srv.run(f"findmnt {STATE}/runtime/taint1/merged").rc != 0, "mounted anyway"


def test_an_upper_dir_over_its_cap_fails_with_the_mount_helpers_reason(srv, booted, instance):
    instance("full1", 27049, overlays=["demo-coop"], upper_dir_max="64M")
    upper = plain_upper_dir(srv, "full1")
    # What a server left behind (logs, sprays, downloads), written as its runtime user.
    srv.check_output(f"runuser -u left4me -- sh -c 'head -c 70M /dev/zero > {upper}/spray.dat'"
                     f" && ln -s /var/lib/left4me/installation {upper}/link")
    run = adhoc({"name": "full1", "state": "started"})
    assert run.returncode != 0
    assert "left4me-server@full1.service did not start: left4me-mount: mount full1:" \
        f" upper dir {upper} holds more than 64.0 MiB (at least 70.0 MiB)" in run.stdout, \
        run.stdout[-2000:]
    assert srv.run(f"findmnt {STATE}/runtime/full1/merged").rc != 0, "mounted anyway"
    srv.check_output(f"rm {upper}/spray.dat")
    run = adhoc({"name": "full1", "state": "started"})
    assert run.returncode == 0, run.stdout[-2000:]
    assert a2s_name(booted.address, 27049, timeout=3)


def test_a_running_server_writing_past_its_cap_is_killed_and_not_restarted(srv, instance):
    assert srv.check_output("systemctl is-enabled left4me-upper-check.timer") == "enabled"
    assert srv.check_output("systemctl is-active left4me-upper-check.timer") == "active"
    verified = srv.run("systemd-analyze verify --man=no /usr/local/lib/systemd/system/"
                       "left4me-upper-check.service /usr/local/lib/systemd/system/"
                       "left4me-upper-check.timer")
    assert verified.rc == 0 and verified.stdout + verified.stderr == "", verified.stderr
    instance("spray1", 27052, overlays=["demo-coop"], upper_dir_max="64M")
    upper = plain_upper_dir(srv, "spray1")
    run = adhoc({"name": "spray1", "state": "started"})
    assert run.returncode == 0, run.stdout[-2000:]
    srv.check_output(f"runuser -u left4me -- sh -c 'head -c 70M /dev/zero > {upper}/spray.dat'")
    srv.check_output("systemctl start left4me-upper-check.service")  # what the timer runs
    unit = "left4me-server@spray1.service"
    for _attempt in range(60):  # killed, then each restart refused: failed within seconds
        if srv.run(f"systemctl is-failed {unit}").stdout.strip() == "failed":
            break
        time.sleep(0.5)
    assert srv.run(f"systemctl is-failed {unit}").stdout.strip() == "failed"
    said = srv.check_output("journalctl -u left4me-upper-check.service -o cat --no-pager")
    assert f"left4me-mount: check spray1: upper dir {upper} holds more than 64.0 MiB" in said
    assert srv.run(f"findmnt {STATE}/runtime/spray1/merged").rc != 0, "mounted anyway"
    restarts = srv.check_output(f"journalctl -u {unit} -o cat --no-pager")
    assert f"left4me-mount: mount spray1: upper dir {upper} holds more than 64.0 MiB" in restarts


def test_a_missing_layer_fails_with_the_mount_helpers_reason(srv, instance):
    layer = f"{STATE}/overlays/molecule-gone"
    srv.check_output(f"mkdir -p {layer}/left4dead2/cfg")
    try:
        instance("layer1", 27048, overlays=["molecule-gone"])
    finally:
        srv.check_output(f"rm -rf {layer}")
    run = adhoc({"name": "layer1", "state": "started"})
    assert run.returncode != 0
    assert "left4me-server@layer1.service did not start: left4me-mount: mount layer1:" \
        in run.stdout, run.stdout[-2000:]
    assert f"{layer} does not exist" in run.stdout, run.stdout[-2000:]


def test_a_missing_sdk32_link_refuses_the_start_and_names_it(srv):
    link_dir = "/home/left4me/.steam/sdk32"
    before = main_pid(srv, "coop1")
    srv.check_output(f"mv {link_dir} {link_dir}.molecule-aside")
    try:
        run = adhoc({"name": "coop1", "state": "restarted"})
    finally:
        srv.check_output(f"mv {link_dir}.molecule-aside {link_dir}")
    assert run.returncode != 0
    assert f"not starting coop1: {link_dir}/steamclient.so is missing" in run.stdout, \
        run.stdout[-2000:]
    assert "LAN-only" in run.stdout and "playbooks/site.yml" in run.stdout
    assert main_pid(srv, "coop1") == before, "the running server was left alone"


def test_a_server_that_cannot_bind_shows_the_journals_reason(instance):
    instance("bind1", 27046, overlays=["demo-coop"], rcon_password=SECRET,
             environment={"SRCDS_SIM_BIND_FAIL": "1"})
    run = adhoc({"name": "bind1", "state": "started", "wait_retries": 60})
    assert run.returncode != 0
    assert "instance 'bind1' did not answer A2S_INFO" in run.stdout, run.stdout[-2000:]
    assert "journal of left4me-server@bind1.service:" in run.stdout
    assert "Couldn't allocate any server IP port" in run.stdout, run.stdout[-2000:]
    assert "status=1/FAILURE" in run.stdout
    assert SECRET not in run.stdout + run.stderr


def test_a_capped_server_is_refused_its_writes_past_the_cap_and_its_cap_grows(srv, booted,
                                                                             instance):
    """A new server's writes live on its own ext4 image: a write past the cap fails there
    and then; a bigger cap applies at the restart a converge makes; a cap below what it
    holds is refused, naming both sizes, and nothing changes; removal deletes the image."""
    instance("cap1", 27055, overlays=["demo-coop"], upper_dir_max="96M")
    run = adhoc({"name": "cap1", "state": "started"})
    assert run.returncode == 0, run.stdout[-2000:]
    image = srv.file(f"{STATE}/runtime/cap1/writes.img")
    assert (image.user, image.mode, image.size) == ("root", 0o600, 96 << 20)
    fill = f"{STATE}/runtime/cap1/merged/fill.bin"
    wrote = srv.run(f"runuser -u left4me -- dd if=/dev/zero of={fill} bs=1M count=200")
    assert wrote.rc != 0 and "No space left on device" in wrote.stderr, wrote.stderr
    assert srv.check_output("systemctl is-active left4me-server@cap1") == "active"

    run = adhoc({"name": "cap1", "port": 27055, "overlays": ["demo-coop"],
                 "upper_dir_max": "64M", "state": "started"})
    assert run.returncode != 0
    assert "more than the new upper_dir_max 64.0 MiB" in run.stdout, run.stdout[-2000:]
    assert srv.file(image.path).size == 96 << 20
    assert f"LEFT4ME_UPPER_DIR_MAX={96 << 20}" in srv.file(
        "/etc/left4me/instances/cap1.env").content_string, "the refused cap was written"

    grown = {"name": "cap1", "port": 27055, "overlays": ["demo-coop"], "upper_dir_max": "160M",
             "state": "started"}
    run = adhoc(grown)
    assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
    assert srv.file(image.path).size == 160 << 20
    assert srv.file(fill).size > 80 << 20, "her files did not survive the grow"
    assert a2s_name(booted.address, 27055, timeout=3)
    again = adhoc(grown)
    assert again.returncode == 0 and "CHANGED" not in again.stdout, again.stdout[-2000:]

    srv.check_output(f"rm {fill}")
    check = ansible("ansible", PLATFORM, "-b", "--check", "--diff", "-m",
                    "left4me.l4d2.srcds_instance", "-a",
                    json.dumps({"name": "cap1", "state": "absent"}))
    assert check.returncode == 0 and "CHANGED" in check.stdout, check.stdout[-2000:]
    assert f"{STATE}/runtime/cap1/writes.img" in check.stdout, check.stdout[-2000:]
    assert srv.file(image.path).exists, "check mode removed the image"
