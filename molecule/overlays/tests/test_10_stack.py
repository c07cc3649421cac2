"""An instance stacking a files, a script and a Workshop overlay serves all three.

What a player or operator notices: the server answers A2S with the hostname the files
overlay sets, and over RCON it lists the script-built map and every Workshop add-on as
loaded (none missing: the Workshop links resolve inside the hardened unit).
"""

import a2s
import pytest
from rcon.source import Client

from testhosts import host as testhosts

PORT = 27035
RCON_PASSWORD = "molecule-stack-rcon"  # host_vars/mol-ovl.yml
WORKSHOP_ITEMS = 6  # one item plus a collection that nests another (host_vars)


@pytest.fixture
def address(host):
    """The host's veth address: where a player on this machine reaches the server."""
    return testhosts.load(host.backend.get_hostname()).address


def test_stacked_instance_answers_with_the_files_overlay_hostname(address):
    info = a2s.info((address, PORT), timeout=5)
    assert info.server_name == "left4me stack"
    assert info.game == "Left 4 Dead 2"


def test_stacked_instance_loads_script_and_workshop_add_ons(address):
    with Client(address, PORT, passwd=RCON_PASSWORD, timeout=10) as client:
        listing = client.run("sim_addons")
    states = [line.split()[0] for line in listing.splitlines() if line.strip()]
    assert "missing" not in states and "invalid" not in states, listing
    assert any(line.endswith("stackmap.vpk") for line in listing.splitlines()), listing
    assert states.count("loaded") == WORKSHOP_ITEMS + 1, listing
