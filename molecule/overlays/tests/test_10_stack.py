"""An instance stacking a files, a script and a Workshop overlay serves all three.

What a player or operator notices: the server answers A2S with the hostname the files
overlay sets, and over RCON it lists the script-built map and every Workshop add-on as
loaded (none missing: the Workshop links resolve inside the hardened unit).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import a2s
import pytest

from testhosts import host as testhosts

PORT = 27035
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
    # RCON answers the host's root only: ask through the collection's rcon module, as the
    # UI's console does (this machine, playing the internet, gets no answer).
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i",
         os.environ["MOLECULE_INVENTORY_FILE"], "mol-ovl", "-b",
         "-m", "left4me.l4d2.rcon", "-a", json.dumps({"name": "stack", "command": "sim_addons"})],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
        check=False, env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
                          "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    listing = json.loads(run.stdout.split("=>", 1)[1])["output"]  # "mol-ovl | SUCCESS => {...}"
    states = [line.split()[0] for line in listing.splitlines() if line.strip()]
    assert "missing" not in states and "invalid" not in states, listing
    assert any(line.endswith("stackmap.vpk") for line in listing.splitlines()), listing
    assert states.count("loaded") == WORKSHOP_ITEMS + 1, listing
