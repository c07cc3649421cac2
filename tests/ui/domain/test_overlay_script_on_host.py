"""A script overlay built on a host converged with site.yml, as the UI runs it.

Build: the script runs in the collection's sandbox (left4me.l4d2.script_overlay), its file
appears in the overlay on the host, the job's log grows while it runs and shows the
script's output. Then an edit that makes the script fail: the job fails, the host keeps
the previous tree, and the last build says the previous revision is still in use.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from domain_helpers import with_settings

from left4me_ui import jobs, overlay_script, overlays
from left4me_ui.core import Core
from left4me_ui.inventory import load_inventory
from testhosts import host

pytestmark = pytest.mark.testhost

GOOD = """#!/bin/sh
set -eu
mkdir -p /overlay/left4dead2/cfg
echo 'sv_tags v1' > /overlay/left4dead2/cfg/script.cfg
echo "wrote script.cfg as $(id -un)"
sleep 8  # long enough for the job to check on it while it runs
echo done
"""
# Writes over the file, then fails: none of it may reach the overlay.
BROKEN = """#!/bin/sh
set -eu
echo 'sv_tags v2' > /overlay/left4dead2/cfg/script.cfg
echo 'about to fail' >&2
exit 3
"""


@pytest.fixture
def host_core(core: Core, booted_host: host.TestHost, demo_inventory: Path) -> Core:
    with_settings(core, inventory=demo_inventory)
    core.inventory_loader = load_inventory
    return core


def _log(core: Core, actor, job_id: int) -> str:
    return "\n".join(e.text for e in jobs.events(core, actor, job_id))


def test_a_script_overlay_builds_and_a_failed_build_keeps_the_previous(host_core, booted_host,
                                                                        alice):
    overlay_script.create(host_core, alice, "alice-script")
    overlay_script.save(host_core, alice, "alice-script", GOOD)
    job_id = overlays.build(host_core, alice, "alice-script", booted_host.name)
    job = jobs.run_next(host_core)
    log = _log(host_core, alice, job_id)
    assert (job.id, job.state) == (job_id, jobs.SUCCEEDED), f"{job.error}\n{log[-3000:]}"
    assert job.done_tasks == job.expected_tasks == 10  # the progress bar ends full
    built = "/var/lib/left4me/overlays/alice-script/left4dead2/cfg/script.cfg"
    assert booted_host.nsenter("cat", built) == "sv_tags v1\n"
    assert "FAILED - RETRYING" in log  # the job checked on the script while it ran
    last = overlay_script.last_build(host_core, alice, "alice-script")
    assert last.log == ["wrote script.cfg as left4me", "done"]
    assert last.message == (f"revision 2 built on {booted_host.name}; servers use it from"
                            " their next (re)start")

    overlay_script.save(host_core, alice, "alice-script", BROKEN)
    job_id = overlays.build(host_core, alice, "alice-script", booted_host.name)
    job = jobs.run_next(host_core)
    assert (job.id, job.state) == (job_id, jobs.FAILED)
    assert "previous content of /var/lib/left4me/overlays/alice-script is untouched" \
        in job.error
    assert booted_host.nsenter("cat", built) == "sv_tags v1\n"
    last = overlay_script.last_build(host_core, alice, "alice-script")
    assert "about to fail" in last.log
    assert last.message == ("build failed; the previous build (revision 2) is still what"
                            f" servers use on {booted_host.name}")
