"""The host started bare and the game_host role installed what its scripts and modules run.

Test hosts boot an image as bare as a fresh Debian server (testhosts/image.py) and get
packages only from a local apt repository, through the roles' own apt tasks. So a package
the role forgets is missing here exactly as on a fresh production host.
"""

import os
import pathlib
import re
import shlex
import subprocess

import pytest
import yaml

from testhosts import image

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path.cwd()))
ROLES = PROJECT / "collections/ansible_collections/left4me/l4d2/roles"
SCRIPTS = sorted((ROLES / "overlays/files/scripts").glob("*.sh"))
GAME_HOST_PACKAGES = yaml.safe_load(
    (ROLES / "game_host/defaults/main.yml").read_text())["game_host_packages"]


def required_commands(script):
    line = next(line for line in script.read_text().splitlines()
                if line.startswith("# requires:"))
    return line.split(":", 1)[1].split()


def bare_image_packages():
    """Packages installed in the image the host booted from (its dpkg status)."""
    status = subprocess.run(
        ["tar", "--zstd", "-xOf", str(image.image_path()), "./var/lib/dpkg/status"],
        check=True, capture_output=True, text=True).stdout
    return {stanza.group(1) for stanza in
            re.finditer(r"^Package: (\S+)\n(?:.+\n)*?Status: install ok installed$", status,
                        re.MULTILINE)}


def installed_by_apt(host):
    """Packages apt installed on this host since it booted (its history log)."""
    history = host.file("/var/log/apt/history.log").content_string
    names = set()
    for line in history.splitlines():
        if line.startswith("Install: "):
            # "Install: curl:amd64 (8.14.1-2), libcurl4t64:amd64 (8.14.1-2, automatic)"
            names |= set(re.findall(r"([a-z0-9][a-z0-9+.-]*):[a-z0-9]+ \(", line))
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_build_script_commands_exist(host, script):
    commands = required_commands(script)
    probe = " ; ".join(f"command -v {shlex.quote(c)} >/dev/null || echo {shlex.quote(c)}"
                       for c in commands)
    missing = host.run(f"sh -c {shlex.quote(probe)}").stdout.split()
    assert not missing, f"{script.name} runs {missing}, which the converged host lacks"


def test_game_host_packages_were_installed_by_the_role(host):
    bare = bare_image_packages()
    assert "curl" not in bare and "7zip" not in bare, "the test image is not bare"
    installed = installed_by_apt(host)
    for package in GAME_HOST_PACKAGES:
        assert host.package(package).is_installed, package
        assert package in bare or package in installed, (
            f"{package} is installed but apt's history does not show the role installing it")
    assert {p for p in GAME_HOST_PACKAGES if p not in bare} <= installed


def test_the_only_apt_source_is_the_local_repository(host):
    sources = host.run("apt-get indextargets --format '$(URI)'").stdout.split()
    assert sources, "apt knows no source at all"
    assert all(uri.startswith(f"file:{image.REPO_MOUNT}") for uri in sources), sources
    policy = host.check_output("apt-cache policy curl")
    assert f"file:{image.REPO_MOUNT}" in policy
