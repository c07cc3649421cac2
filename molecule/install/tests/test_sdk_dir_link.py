"""A home whose ~/.steam/sdk32 is itself a link into steamcmd's linux32 keeps steamcmd's library.

That layout is real: the Steam client's steam.sh links ~/.steam/sdk32 and sdk64 to its own
linux32/linux64 (ValveSoftware/steam-for-linux#2232's trace, #3696's listing), and the hand
fix for "Failed to load steamclient.so" links them to steamcmd's. Writing steamclient.so
through such a link once replaced steamcmd's own library with a link to itself, reported
success, and the next start was refused. srcds_install runs as the role runs it, ad hoc
against the converged host.
"""


import pytest
from srcds_install_run import run_srcds_install

STATE = "/var/lib/left4me"
HOME = "/home/left4me"
STEAMCMD = f"{STATE}/steam"


def run_module(host, *flags):
    """srcds_install on the host through `ansible` (become), its result as a dict."""
    module_args = {"install_dir": f"{STATE}/installation", "steamcmd_dir": STEAMCMD,
                   "run_as": "left4me"}
    return run_srcds_install(host, module_args, *flags)


def library_head(host, arch):
    """The first bytes of steamcmd's own steamclient.so, read as the runtime user."""
    return host.run(f"sudo -u left4me od -An -c -N4 {STEAMCMD}/{arch}/steamclient.so")


@pytest.mark.parametrize(("sdk", "arch"), [("sdk32", "linux32"), ("sdk64", "linux64")])
def test_sdk_dir_linked_into_steamcmd_is_replaced_not_written_through(host, sdk, arch):
    host.check_output(f"sudo -u left4me sh -c 'rm -rf {HOME}/.steam/{sdk}"
                      f" && ln -s {STEAMCMD}/{arch} {HOME}/.steam/{sdk}'")
    checked = run_module(host, "--check")
    assert checked["changed"]
    assert f".steam/{sdk} is a link to {STEAMCMD}/{arch}" in " ".join(checked["_shown"].split())
    assert host.file(f"{HOME}/.steam/{sdk}").is_symlink  # check mode changed nothing

    repaired = run_module(host)
    assert repaired["changed"]
    library = host.file(f"{STEAMCMD}/{arch}/steamclient.so")
    assert library.is_file and not library.is_symlink
    head = library_head(host, arch)
    assert head.rc == 0 and head.stdout.split()[:4] == ["177", "E", "L", "F"], head.stderr
    sdk_dir = host.file(f"{HOME}/.steam/{sdk}")
    assert sdk_dir.is_directory and not sdk_dir.is_symlink and sdk_dir.user == "left4me"
    assert host.file(f"{HOME}/.steam/{sdk}/steamclient.so").linked_to == library.path

    assert not run_module(host)["changed"]
