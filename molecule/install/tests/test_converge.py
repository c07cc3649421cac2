"""What a plain converge of a converged host still guarantees, now that it reads each role's
files and directories once and writes only what differs, and asks Steam for updates only on
request (game_host_install_update, --tags game_host_update)."""

import os
import sys

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

from testhosts.converge import run_site  # noqa: E402

STATE = "/var/lib/left4me"
LOG = f"{STATE}/steam/left4me-install.log"
SLICE = "/usr/local/lib/systemd/system/l4d2-build.slice"
HELPER = "/usr/local/libexec/left4me/left4me-mount"
WORKSHOP_LIB = "/usr/local/libexec/left4me/left4me_workshop.py"
TIMER = "left4me-workshop-refresh.timer"


def test_converge_puts_back_what_changed_on_the_host_and_runs_no_steamcmd(host):
    name = host.backend.get_hostname()
    slice_before = host.file(SLICE).content_string
    lib_before = host.file(WORKSHOP_LIB).sha256sum
    log_before = host.file(LOG).size
    # Drift of every kind the single reads compare: content, mode, owner, a missing file,
    # a disabled and stopped timer.
    host.check_output(f"echo CPUWeight=1000 >> {SLICE} && chmod 0777 {HELPER}"
                      f" && chown root {STATE}/overlays && rm {WORKSHOP_LIB}"
                      f" && chmod 0700 {STATE}/runtime && systemctl disable --now {TIMER}")
    counters = run_site(name)
    assert counters["changed"] >= 5 and counters["failed"] == 0, counters
    assert host.file(SLICE).content_string == slice_before
    assert host.file(HELPER).mode == 0o755
    assert host.file(f"{STATE}/overlays").user == "left4me"
    assert host.file(WORKSHOP_LIB).sha256sum == lib_before
    runtime = host.file(f"{STATE}/runtime")
    assert runtime.is_directory and (runtime.user, runtime.mode) == ("root", 0o755)
    assert host.service(TIMER).is_enabled and host.service(TIMER).is_running
    # The game was complete: a plain converge asked Steam nothing (steamcmd logs every run).
    assert host.file(LOG).size == log_before


def test_update_runs_on_request_only(host):
    name = host.backend.get_hostname()
    log_before = host.file(LOG).size
    counters = run_site(name, "--tags", "game_host_update")
    assert counters["failed"] == 0 and counters["changed"] == 0, counters  # same build
    log = host.file(LOG)
    assert log.size > log_before, "steamcmd ran: the update check happened"
    assert "Success! App '222860'" in log.content_string[log_before:]
