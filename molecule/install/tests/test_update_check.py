"""Is a newer build out? On the converged host, with the stand-ins offering one: the module
(and the role's --tags game_host_update_check) says "update available" by both methods and
nothing is downloaded or changed: the manifest, steam.inf, the install log and every file's
mtime stay as they were."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest
from srcds_install_run import run_srcds_install

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

from testhosts import host as testhosts  # noqa: E402

STATE = "/var/lib/left4me"
INSTALL = f"{STATE}/installation"
CONTROL = f"{STATE}/steam/standin-control.json"
LOG = f"{STATE}/steam/left4me-install.log"
MANIFEST = f"{INSTALL}/steamapps/appmanifest_222860.acf"


def check(host, *flags, **args):
    """srcds_update_check on the host through `ansible` (become), as the role calls it."""
    module_args = {"state_dir": STATE, "run_as": "left4me", **args}
    return run_srcds_install(host, module_args, *flags, module="left4me.l4d2.srcds_update_check")


def install_snapshot(host):
    """Every file of the install with its mtime and size, the log's size, the manifest."""
    listing = host.check_output(f"find {INSTALL}/ -printf '%p %T@ %s\\n' | sort | sha256sum")
    return listing, host.file(LOG).size, host.file(MANIFEST).sha256sum


@pytest.fixture(scope="module")
def newer_build_offered(host):
    """The stand-in steamcmd offers the installed build + 1; the control file is put back."""
    control = host.file(CONTROL)
    before = control.content if control.exists else None
    build = int(host.check_output(
        f"sed -n 's/.*\"buildid\"[[:space:]]*\"\\([0-9]*\\)\".*/\\1/p' {MANIFEST}"))
    knob = json.dumps({"buildid": build + 1}).encode()
    host.check_output(f"echo {base64.b64encode(knob).decode()} | base64 -d > {CONTROL}"
                      f" && chmod 0644 {CONTROL}")
    yield build
    if before is None:
        host.check_output(f"rm -f {CONTROL}")
    else:
        host.check_output(f"echo {base64.b64encode(before).decode()} | base64 -d > {CONTROL}")


def test_steamcmd_reads_the_offered_build_as_an_update_and_downloads_nothing(
        host, newer_build_offered):
    build = newer_build_offered
    before = install_snapshot(host)
    result = check(host)
    assert result.get("changed") is False and result.get("update_available") is True, result
    assert (result["installed_build"], result["offered_build"]) == (build, build + 1)
    assert result["installed_version"] == f"2.2.4.{build % 1000}"
    assert install_snapshot(host) == before, "nothing downloaded, nothing changed"
    in_check_mode = check(host, "--check")
    assert (in_check_mode["changed"], in_check_mode["update_available"]) == (False, True)


def test_the_roles_tag_runs_only_the_check(host, newer_build_offered):
    before = install_snapshot(host)
    name = host.backend.get_hostname()
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", name,
         "--tags", "game_host_update_check", "playbooks/site.yml"],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
        check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = " ".join(run.stdout.split())  # the message may be wrapped
    assert (f"update_available=True: update available: Steam offers build"
            f" {newer_build_offered + 1}") in said, run.stdout[-3000:]
    recap = re.search(rf"^{re.escape(name)}\s+:.*$", run.stdout, re.MULTILINE)
    assert recap and "changed=0" in recap.group(0) and "failed=0" in recap.group(0)
    assert "Install or update the game" not in run.stdout, "the check only"
    assert install_snapshot(host) == before


@pytest.fixture
def webapi_offering(host, newer_build_offered):
    """The stand-in Web API on our end of the host's veth, holding build + 1 current."""
    booted = testhosts.load(host.backend.get_hostname())
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.webapi", "--bind", booted.gateway, "--port", "0",
         "--offered-buildid", str(newer_build_offered + 1)],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"listening on (\S+)", line)
        assert url, line
        yield url.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_web_api_from_the_host_says_out_of_date(host, newer_build_offered, webapi_offering):
    before = install_snapshot(host)
    result = check(host, method="webapi", api_url=webapi_offering)
    assert result["update_available"] is True, result
    assert result["required_version"] == int(f"224{(newer_build_offered + 1) % 1000}")
    assert result["output_tail"] == [] and install_snapshot(host) == before
