"""A script overlay built on a host converged with site.yml, as the UI runs it.

Build: the script runs in the collection's sandbox (left4me.l4d2.script_overlay), its file
appears in the overlay on the host, and the job's log shows each line the script prints
while it still runs (read as a page reads it, with a worker thread running the job).
Then an edit that makes the script fail: the job fails, the host keeps the previous tree,
the last build says the previous revision is still in use, and the failed build's checks
show its own lines, not the previous build's. Deleted: the remove job takes the overlay
and its live build log off the host.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from domain_helpers import with_settings

from left4me_ui import jobs, overlays
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import script as overlay_script
from left4me_ui.runner import load_inventory
from testhosts import host

pytestmark = pytest.mark.testhost

GOOD = """#!/bin/sh
set -eu
mkdir -p /overlay/left4dead2/cfg
echo 'sv_tags v1' > /overlay/left4dead2/cfg/script.cfg
echo "wrote script.cfg as $(id -un)"
sleep 8  # long enough for the job to check on it (every 3 s) while it runs
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
    seen: list[tuple[bool, str, str]] = []  # (job finished when read, task, text)
    runner = threading.Thread(target=jobs.run_next, args=(host_core,))
    runner.start()  # as a worker thread runs it; this one reads the log as a page does
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            lines = jobs.events(host_core, alice, job_id, after_seq=len(seen))
            job = jobs.get(host_core, alice, job_id)  # read after: were they there before?
            seen.extend((job.finished, e.task or "", e.text) for e in lines)
            if job.finished:
                break
            time.sleep(0.2)
    finally:
        runner.join(timeout=120)
    log = "\n".join(text for _ended, _task, text in seen)
    assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
    assert job.done_tasks == job.expected_tasks == 17  # the progress bar ends full
    built = "/var/lib/left4me/overlays/alice-script/left4dead2/cfg/script.cfg"
    assert booted_host.nsenter("cat", built) == "sv_tags v1\n"
    # The script's first line is in the log while the job runs, shown by a check on it
    # (not only by the closing "Show the build script's output"), and only once.
    live = [(ended, text) for ended, task, text in seen
            if task.startswith("Wait for the build script")
            and "wrote script.cfg as left4me" in text.splitlines()]
    assert len(live) == 1 and not live[0][0], log
    assert any("done" in text.splitlines() for _ended, task, text in seen
               if task.startswith("Wait for the build script")), log
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
    # Its checks show its own lines, never the previous build's.
    checks = "\n".join(e.text for e in jobs.events(host_core, alice, job_id)
                       if (e.task or "").startswith("Wait for the build script"))
    assert "about to fail" in checks.splitlines() and "wrote script.cfg" not in checks
    assert last.message == ("build failed; the previous build (revision 2) is still what"
                            f" servers use on {booted_host.name}")

    overlays.delete(host_core, alice, "alice-script")
    (remove,) = [j for j in jobs.history(host_core, alice) if j.kind == "overlay remove"]
    job = jobs.run_next(host_core)
    assert (job.id, job.state) == (remove.id, jobs.SUCCEEDED), job.error
    left = booted_host.nsenter("ls", "-A", "/var/lib/left4me/overlays").split()
    assert not [n for n in left if n in ("alice-script", ".alice-script.log")
                or n.startswith(".alice-script.retired-")], left
