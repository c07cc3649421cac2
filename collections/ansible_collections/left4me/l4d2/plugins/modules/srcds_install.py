#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: srcds_install
short_description: Install or update the shared Left 4 Dead 2 dedicated server with steamcmd
version_added: 0.1.0
description:
  - Installs or updates Steam app 222860 (Left 4 Dead 2 Dedicated Server) into
    O(install_dir) with the steamcmd found in O(steamcmd_dir), running steamcmd as the
    unprivileged O(run_as) user.
  - An anonymous Linux install that steamcmd refuses with C(Invalid platform) or
    C(Missing configuration) is retried with the platform pass
    C(@sSteamCmdForcePlatformType windows), C(app_update 222860),
    C(@sSteamCmdForcePlatformType linux), C(app_update 222860 validate). A cold appinfo
    cache (steamcmd's first runs on a host) can make that pass fail with C(Missing
    configuration) too; it is retried up to three times in all, a few seconds apart.
  - Keeps C(~/.steam/sdk32/steamclient.so) and C(~/.steam/sdk64/steamclient.so) of the
    O(run_as) user pointing into steamcmd's C(linux32/) and C(linux64/); without them srcds
    cannot initialise Steam and the server is invisible to the master server.
  - A C(~/.steam/sdk32) or C(sdk64) that is itself a link (the Steam client's C(steam.sh)
    links them to its own C(linux32/) and C(linux64/), hand fixes to steamcmd's) is replaced
    by a directory of its own, with a warning; the link is never written through it, which
    would replace the library there (steamcmd's own with a link to itself). A C(~/.steam)
    that is a link is refused; a C(steamclient.so) of steamcmd's that is a link to itself
    (left by such a write) is reported with the way to restore it.
  - Reports C(changed) only when the installed build (C(buildid) and completeness in
    C(steamapps/appmanifest_222860.acf)) or a link changed. Files that O(validate) repairs
    within the same build are not a change.
  - steamcmd's output is classified; a failure names its kind (RV(error_kind)) and what to
    do about it, and the last lines of steamcmd's output are returned in both outcomes.
    Update-state codes map to kinds (0x402 and 0x602 V(network); 0x202 and 0x212
    V(disk_full); 0x606 V(disk_write); 0x626 and 0x6A6 V(content)), and so do steamcmd's
    quiet exits before its console starts (1 V(self_update), 7 V(steamcmd_dir_owner)).
  - After every run, shared objects under O(install_dir) that request an executable stack
    (C(PT_GNU_STACK) with C(PF_X)) get that flag cleared, see O(clear_execstack).
  - The login is written to a steamcmd script file (mode 0600, removed afterwards) run with
    C(+runscript); the password never appears in a command line.
  - With O(side_by_side), steamcmd never writes the build running servers use; see that option.
author:
  - left4me developers (@left4me)
options:
  install_dir:
    description:
      - Directory of the shared game install, normally C({state_dir}/installation).
      - Created (mode 0755, owned by O(run_as)) when missing; an existing one must be owned
        by O(run_as), because steamcmd writes it as that user.
    type: path
    required: true
  steamcmd_dir:
    description:
      - steamcmd's home, holding C(steamcmd.sh), C(linux32/) and C(linux64/).
    type: path
    required: true
  run_as:
    description:
      - User steamcmd runs as and whose C(~/.steam) links are managed.
      - The module drops privileges itself (it must run as root for that); when omitted,
        steamcmd runs as the user running the module.
    type: str
  update:
    description:
      - V(true) runs steamcmd on every call so an available update is installed.
      - V(false) runs steamcmd only when the install is missing or incomplete.
    type: bool
    default: true
  validate:
    description:
      - Pass C(validate) to C(app_update), so steamcmd checks every file and repairs those
        that differ. Slow on a full install.
    type: bool
    default: false
  steam_user:
    description:
      - Steam account to log in with; the dedicated server installs anonymously.
    type: str
    default: anonymous
  steam_password:
    description:
      - Password of O(steam_user); required unless it is V(anonymous). Passed to steamcmd
        in a script file, never on a command line.
      - Neither may contain whitespace or double quotes.
    type: str
  timeout:
    description:
      - Seconds all steamcmd runs of this call may take together before they are stopped.
        A first install downloads about 10 GB.
    type: int
    default: 3600
  log_path:
    description:
      - File that steamcmd's output is appended to as it arrives, so a long run can be
        followed with C(tail -f). Not written in check mode.
    type: path
  clear_execstack:
    description:
      - Clear the executable-stack request of shared objects (C(*.so), C(*.so.N)) under
        O(install_dir) whose C(PT_GNU_STACK) program header has C(PF_X), after every run.
      - Why - glibc 2.41 (Debian 13) refuses to C(dlopen) a library that requests an
        executable stack ("cannot enable executable stack as shared object requires"), and
        Left 4 Dead 2 builds have shipped such libraries (Source-1-Games issues 6978 and
        8116) that do not need one; srcds then cannot load its engine. Valve fixed those
        builds by clearing the same flag (C(execstack -c)).
      - How - only that flag in only those files changes; each file is patched in a copy
        that replaces it atomically, keeping mode, owner and times. The files and their
        sha256 after clearing are recorded in O(execstack_record), so a re-run changes
        nothing, and a file that steamcmd restored (an update or C(validate) rewrites it)
        is cleared again. A library with no C(PT_GNU_STACK) header at all cannot be fixed
        in place; the module then fails and names it.
      - The alternative, C(GLIBC_TUNABLES=glibc.rtld.execstack=2) in the game unit, lets
        every library the server loads (add-on plugins included) make the whole process's
        stack executable. Clearing the flag keeps the stack non-executable and touches only
        the files that asked, which is why it is the default. V(false) leaves the files as
        Valve shipped them.
    type: bool
    default: true
  execstack_record:
    description:
      - JSON file recording the shared objects whose flag was cleared (install-relative
        path and sha256 after clearing). Defaults to C(<install_dir>.execstack.json),
        beside the install and outside what steamcmd manages.
    type: path
  side_by_side:
    description:
      - Install and update in builds beside each other, so a running server's files never
        change under it (overlayfs leaves a lower layer changed under a mount undefined).
      - Builds are C(STATE_DIR/builds/N/) (owned by O(run_as)); the root-owned link
        C(builds/current) names the current one and O(install_dir), which must be
        C(STATE_DIR/installation), becomes a root-owned link to C(builds/current). A server's
        mount resolves it once, at its start, and keeps that build until its next start.
      - An install or update copies the current build to the next N (C(cp -a --reflink=auto)
        as O(run_as); shared blocks on a filesystem with reflinks, a full copy elsewhere;
        never hard links, through which a chmod or an in-place write by steamcmd would reach
        the running build), runs steamcmd there, checks the manifest complete and clears
        its libraries (O(clear_execstack)), and only then renames a new C(current) link into
        place. An update that brought nothing new (same C(buildid), same files outside
        C(steamapps/)) is discarded. A failed one is removed; the current build stays
        current and untouched.
      - Before copying, the disk it needs is computed (the current build's size when the
        filesystem has no reflinks, plus O(update_headroom)) and the update is refused,
        changing nothing, when C(builds/) has less free (RV(disk)).
      - Every call (check mode predicts it) removes builds that are not current and that no
        overlay mount in PID 1's mount namespace has among its lower layers.
      - A plain O(install_dir) directory from before builds becomes C(builds/1) by a rename
        (no download) while no mount uses it; while one does, it stays, an update copies it
        into a new build, and it is removed once no server uses it any more.
      - One call at a time - a second one while another holds C(builds/.update.lock) fails
        at once (RV(error_kind) V(busy)) and changes nothing.
    type: bool
    default: false
  update_headroom:
    description:
      - With O(side_by_side), the free disk an update needs in C(builds/) beyond the copy of
        the current build, for what steamcmd downloads and writes (an L4D2 update is usually
        well under this; a first install needs about 10 GB and is not bounded by it).
      - A size such as V(2G), V(500M) or a number of bytes.
    type: str
    default: 2G
attributes:
  check_mode:
    description:
      - Reads the manifest, the links and the installed shared objects and runs no steamcmd.
    support: partial
    details:
      - It predicts an install when the manifest is missing or incomplete, a link change,
        and which libraries it would clear (RV(execstack_cleared)) exactly. Whether Steam
        has a newer build cannot be known without asking Steam, so check mode never
        predicts an update of a complete install (RV(update_checked) is V(false)), nor the
        libraries that update would bring.
  diff_mode:
    description: Shows the installed build, the links and the cleared libraries before and after.
    support: full
notes:
  - Needs root on the target when O(run_as) differs from the connecting user.
  - Long runs do not print progress through Ansible; use C(async) with C(poll) on the task
    (the role C(left4me.l4d2.game_host) does) and O(log_path) to follow steamcmd.
seealso:
  - name: SteamCMD on the Valve Developer Community
    description: steamcmd's commands and its anonymous installs.
    link: https://developer.valvesoftware.com/wiki/SteamCMD
"""

EXAMPLES = r"""
- name: Install or update the game as the runtime user
  left4me.l4d2.srcds_install:
    install_dir: /var/lib/left4me/installation
    steamcmd_dir: /var/lib/left4me/steam
    run_as: left4me
  async: 7200
  poll: 15

- name: Repair the install (check every file)
  left4me.l4d2.srcds_install:
    install_dir: /var/lib/left4me/installation
    steamcmd_dir: /var/lib/left4me/steam
    run_as: left4me
    validate: true
    log_path: /var/lib/left4me/steam/left4me-install.log

- name: Install only when missing, never update
  left4me.l4d2.srcds_install:
    install_dir: /var/lib/left4me/installation
    steamcmd_dir: /var/lib/left4me/steam
    run_as: left4me
    update: false
"""

RETURN = r"""
buildid:
  description:
    - Build installed after this run (in check mode the build installed now).
    - Null when none is installed, or in check mode when an install would run.
  returned: always
  type: int
  sample: 16140412
buildid_before:
  description: Build installed before this run; null when none.
  returned: always
  type: int
  sample: 16140411
installed:
  description: Whether a complete install is present after this run (predicted in check mode).
  returned: always
  type: bool
  sample: true
update_checked:
  description: Whether steamcmd ran and so checked Steam for a newer build.
  returned: always
  type: bool
  sample: true
platform_pass:
  description: Whether the Windows-then-Linux platform pass was needed.
  returned: always
  type: bool
  sample: false
links:
  description: The managed links, path to target.
  returned: always
  type: dict
  sample:
    /home/left4me/.steam/sdk32/steamclient.so: /var/lib/left4me/steam/linux32/steamclient.so
    /home/left4me/.steam/sdk64/steamclient.so: /var/lib/left4me/steam/linux64/steamclient.so
output_tail:
  description:
    - Last lines of steamcmd's output, also returned on failure.
    - Empty when steamcmd did not run.
  returned: always
  type: list
  elements: str
  sample: ["Success! App '222860' already up to date."]
execstack_cleared:
  description:
    - Install-relative paths of the shared objects whose executable-stack request this run
      cleared (in check mode, would clear); a file steamcmd restored appears again.
  returned: always
  type: list
  elements: str
  sample: ["bin/engine_srv.so"]
execstack_recorded:
  description:
    - Every file of the install whose flag left4me has cleared and that still holds that change.
  returned: always
  type: list
  elements: str
  sample: ["bin/engine_srv.so"]
platform_pass_attempts:
  description: How many Windows-then-Linux platform passes ran (0 when none was needed).
  returned: always
  type: int
  sample: 1
build:
  description: With O(side_by_side), the current build's directory after this run.
  returned: when O(side_by_side)
  type: str
  sample: /var/lib/left4me/builds/2
build_before:
  description: With O(side_by_side), the current build's directory before this run (null when none).
  returned: when O(side_by_side)
  type: str
  sample: /var/lib/left4me/builds/1
builds_removed:
  description:
    - With O(side_by_side), builds removed (in check mode, that would be) because they are
      not current and no mount uses them.
  returned: when O(side_by_side)
  type: list
  elements: str
  sample: [/var/lib/left4me/builds/1]
disk:
  description:
    - With O(side_by_side), when an update was prepared - bytes C(needed) (C(copy) plus
      O(update_headroom)), C(free) in C(builds/), C(copy) (0 with reflinks) and whether the
      filesystem shares blocks (C(reflink)).
  returned: when O(side_by_side) and steamcmd was about to run
  type: dict
  sample: {"needed": 2147483648, "free": 53687091200, "copy": 0, "reflink": true}
error_kind:
  description:
    - On failure, what went wrong - V(disk_full), V(disk_write), V(content), V(network),
      V(appinfo_timeout), V(self_update), V(steamcmd_dir_owner), V(no_subscription),
      V(login_failed), V(steam_guard), V(invalid_platform), V(missing_configuration),
      V(run_timeout) (O(timeout) passed), V(offline), V(execstack), V(unknown), or
      V(bad_input); with O(side_by_side) also V(busy) (another call is updating), V(copy)
      (copying the current build failed) and V(builds) (the builds directory is not as
      left4me leaves it).
  returned: failure
  type: str
  sample: disk_full
"""

import contextlib  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils import (  # noqa: E402
    _builds as builds_lib,
)
from ansible_collections.left4me.l4d2.plugins.module_utils import (  # noqa: E402
    _execstack as execstack,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    Left4meError,
    parse_size,
    tree_usage,
    user_account,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    INSTALLATION_DIR,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (  # noqa: E402
    builds_lock,
    mountinfo_path,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._steamcmd import (  # noqa: E402
    PLATFORM_PASS_KINDS,
    AppState,
    LinkLayoutError,
    SteamcmdError,
    apply_steamclient_links,
    classify_output,
    failure_message,
    install_script,
    link_is_correct,
    plan_steamclient_links,
    read_app_state,
    run_streaming,
    sdk_dir_link,
    target_problem,
)

# A cold appinfo cache clears within seconds to minutes: a few spaced attempts, not a loop.
PLATFORM_PASS_ATTEMPTS = 3
PLATFORM_PASS_PAUSE = 5.0


class Installer:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.note = ""  # added to every failure message (side_by_side: what it left)
        self.install_dir = os.path.normpath(self.params["install_dir"])
        self.steamcmd_dir = os.path.normpath(self.params["steamcmd_dir"])
        self.tail: list[str] = []
        self.account = self._account(self.params["run_as"])
        self.remaining = float(self.params["timeout"])

    def fail(self, kind: str, msg: str, **extra) -> None:
        self.module.fail_json(msg=msg + self.note, error_kind=kind, output_tail=self.tail,
                              **extra)

    def _account(self, name: str | None) -> pwd.struct_passwd:
        if not name:
            return pwd.getpwuid(os.geteuid())
        try:
            account = user_account(name, SteamcmdError,
                                   "run_as user {name!r} does not exist on this host")
        except SteamcmdError as exc:
            self.fail("bad_input", str(exc))
        if account.pw_uid != os.geteuid() and os.geteuid() != 0:
            self.fail("bad_input", f"running steamcmd as {name!r} needs root (become: true)")
        return account

    def check_inputs(self) -> None:
        try:
            install_script(self.install_dir, self.params["steam_user"],
                           self.params["steam_password"])
        except SteamcmdError as exc:
            self.fail("bad_input", str(exc))
        if os.path.isdir(self.install_dir):
            owner = os.stat(self.install_dir).st_uid
            if owner != self.account.pw_uid:
                self.fail("bad_input",
                          f"install_dir {self.install_dir} is owned by uid {owner}, not by"
                          f" {self.account.pw_name}, who runs steamcmd and must write there;"
                          f" chown it to {self.account.pw_name}")
        elif not os.path.isdir(os.path.dirname(self.install_dir)):
            self.fail("bad_input", f"the parent of install_dir {self.install_dir} does not exist")

    def steamcmd_present(self) -> bool:
        return os.path.isfile(os.path.join(self.steamcmd_dir, "steamcmd.sh"))

    def run_steamcmd(self, platform_pass: bool, attempt: int = 0) -> str | None:
        """One steamcmd run; returns None on success, else fails or names a retryable kind.

        Retryable: the first Linux-only run refused as a platform problem (the platform
        pass follows), and a platform pass refused for a cold cache while attempts remain.
        """
        script = install_script(
            self.install_dir, self.params["steam_user"], self.params["steam_password"],
            validate=self.params["validate"], platform_pass=platform_pass,
        )
        workdir = tempfile.mkdtemp(prefix="left4me-steamcmd-")
        try:
            script_path = os.path.join(workdir, "install.txt")
            with open(os.open(script_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                      "w", encoding="utf-8") as fh:
                fh.write(script)
            for path in (workdir, script_path):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
            result = self._run([os.path.join(self.steamcmd_dir, "steamcmd.sh"),
                                "+runscript", script_path, "+quit"])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.tail = result.tail
        failure = classify_output(result.output, result.rc)
        if failure is None:
            return None
        if failure.kind in PLATFORM_PASS_KINDS and not platform_pass:
            return failure.kind
        if (failure.kind == "missing_configuration" and platform_pass
                and attempt < PLATFORM_PASS_ATTEMPTS):
            return failure.kind
        self.fail(failure.kind, failure_message(
            failure, user=self.params["steam_user"], install_dir=self.install_dir,
            steamcmd_dir=self.steamcmd_dir, timeout=self.params["timeout"],
            run_as=self.account.pw_name, attempts=attempt),
            rc=result.rc)
        return None

    def install(self) -> int:
        """Run steamcmd, with the platform pass when needed; returns the passes run."""
        if self.run_steamcmd(platform_pass=False) is None:
            return 0
        for attempt in range(1, PLATFORM_PASS_ATTEMPTS + 1):
            if attempt > 1:
                time.sleep(min(PLATFORM_PASS_PAUSE, max(self.remaining - 1.0, 0.0)))
            if self.run_steamcmd(platform_pass=True, attempt=attempt) is None:
                return attempt
        return PLATFORM_PASS_ATTEMPTS  # not reached: the last attempt fails the module

    def record_path(self) -> str:
        return self.params["execstack_record"] or f"{self.install_dir}.execstack.json"

    def plan_execstack(self) -> execstack.Plan | None:
        if not self.params["clear_execstack"] or not os.path.isdir(self.install_dir):
            return None
        return execstack.plan(self.install_dir, execstack.read_record(self.record_path()))

    def apply_execstack(self, decided: execstack.Plan) -> bool:
        """Clear the planned files and write the record; True when the record changed."""
        try:
            record = execstack.apply(self.install_dir, decided)
            return execstack.write_record(self.record_path(), record)
        except execstack.ExecstackError as exc:
            self.fail("execstack", str(exc))
        except OSError as exc:
            self.fail("execstack", f"could not clear the executable-stack flag: {exc}; the"
                      f" install dir and {os.path.dirname(self.record_path())} must be"
                      " writable by the user running the module (root)")
        return False

    def user_switch(self) -> dict:
        """subprocess arguments that run a command as the run_as user."""
        if self.account.pw_uid == os.geteuid():
            return {}
        return dict(user=self.account.pw_uid, group=self.account.pw_gid,
                    extra_groups=os.getgrouplist(self.account.pw_name, self.account.pw_gid))

    def _run(self, argv: list[str]):
        env = dict(os.environ)
        env.update(HOME=self.account.pw_dir, USER=self.account.pw_name,
                   LOGNAME=self.account.pw_name, LANG="C", LC_ALL="C")
        switch = self.user_switch()
        log_path = self.params["log_path"]
        if log_path and not os.path.exists(log_path):
            with open(os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o640), "w"):
                pass
            os.chown(log_path, self.account.pw_uid, self.account.pw_gid)
        started = time.monotonic()
        try:
            result = run_streaming(argv, env=env, cwd=self.steamcmd_dir,
                                   timeout=max(self.remaining, 1.0), log_path=log_path, **switch)
        except OSError as exc:
            self.fail("unknown", f"could not run {argv[0]}: {exc}")
        self.remaining -= time.monotonic() - started
        return result


ARGUMENT_SPEC = dict(
    install_dir=dict(type="path", required=True),
    steamcmd_dir=dict(type="path", required=True),
    run_as=dict(type="str"),
    update=dict(type="bool", default=True),
    validate=dict(type="bool", default=False),
    steam_user=dict(type="str", default="anonymous"),
    steam_password=dict(type="str", no_log=True),
    timeout=dict(type="int", default=3600),
    log_path=dict(type="path"),
    clear_execstack=dict(type="bool", default=True),
    execstack_record=dict(type="path"),
    side_by_side=dict(type="bool", default=False),
    update_headroom=dict(type="str", default="2G"),
)


def apply_links(installer, links) -> None:
    problems = [problem for problem in map(target_problem, links) if problem]
    if problems:
        installer.fail("unknown", "; ".join(problems))
    try:
        apply_steamclient_links(links, installer.account.pw_uid, installer.account.pw_gid)
    except LinkLayoutError as exc:
        installer.fail("bad_input", str(exc))
    except OSError as exc:
        installer.fail("unknown", f"could not create the ~/.steam sdk links: {exc}")


def install_and_fix(installer, links, run_needed: bool):
    """Run steamcmd when needed, then fix the sdk links and the execstack flags.

    Returns the app state after it, the platform passes run, the execstack plan and
    whether the execstack record changed.
    """
    platform_passes = 0
    record_changed = False
    if not installer.steamcmd_present():
        installer.fail("bad_input", f"steamcmd not found: {installer.steamcmd_dir}/steamcmd.sh"
                       " is missing; install steamcmd there first (role game_host does)")
    if not os.path.isdir(installer.install_dir):
        os.mkdir(installer.install_dir, 0o755)
        os.chown(installer.install_dir, installer.account.pw_uid, installer.account.pw_gid)
    if run_needed:
        platform_passes = installer.install()
    after = read_app_state(installer.install_dir)
    if run_needed and not after.complete:
        installer.fail("unknown", "steamcmd reported success but the app manifest of"
                       f" {installer.install_dir} does not show a complete install")
    apply_links(installer, links)
    # After steamcmd: an update or validate may have put Valve's bytes back.
    execstack_plan = installer.plan_execstack()
    if execstack_plan is not None:
        record_changed = installer.apply_execstack(execstack_plan)
    return after, platform_passes, execstack_plan, record_changed


class SideBySide:
    """O(side_by_side): an install or update goes into a new build beside the current one,
    which changes only by a rename of builds/current once the new one is complete."""

    def __init__(self, module: AnsibleModule, installer: Installer):
        self.module = module
        self.installer = installer
        self.params = module.params
        self.builds = builds_lib.Builds(os.path.dirname(installer.install_dir))
        if os.path.basename(installer.install_dir) != INSTALLATION_DIR:
            installer.fail("bad_input", "side_by_side needs install_dir to be"
                           f" STATE_DIR/{INSTALLATION_DIR}, the layer every instance's env file"
                           f" names (got {installer.install_dir})")
        if self.params["execstack_record"]:
            installer.fail("bad_input", "execstack_record cannot be set with side_by_side:"
                           " each build keeps its own, builds/N.execstack.json")
        try:
            self.headroom = parse_size(self.params["update_headroom"], "update_headroom",
                                       Left4meError)
        except Left4meError as exc:
            installer.fail("bad_input", str(exc))
        self.platform_passes = 0
        self.disk: dict | None = None
        self.execstack_plan = None
        self.record_changed = False
        self.removed: list[str] = []

    def read(self):
        layout = builds_lib.read_layout(self.builds)
        with open(mountinfo_path(), encoding="utf-8", errors="surrogateescape") as handle:
            used, flat_used = builds_lib.builds_in_use(handle.read(), self.builds)
        return layout, used, flat_used

    def current_dir(self, layout) -> str | None:
        if layout.current is not None:
            return self.builds.build_dir(layout.current)
        return self.builds.installation if layout.flat else None

    def main(self) -> None:
        try:
            if self.module.check_mode:
                self.exit(self.predict())
            builds_lib.ensure_builds_dir(self.builds)
            with builds_lib.update_lock(self.builds):
                self.exit(self.apply())
        except builds_lib.BuildsBusy as exc:
            self.installer.fail("busy", str(exc))
        except builds_lib.BuildsError as exc:
            self.installer.fail("builds", str(exc))
        except OSError as exc:
            kind = "disk_full" if exc.errno == 28 else "builds"
            self.installer.fail(kind, f"changing the builds in {self.builds.builds_dir}"
                                f" failed: {exc}; the current build was not changed")

    def predict(self) -> dict:
        layout, used, flat_used = self.read()
        source = self.current_dir(layout)
        before = read_app_state(source) if source else AppState()
        if builds_lib.update_running(self.builds):
            # Its unfinished build is no leftover: the builds are the running update's.
            self.module.warn(f"an update is running in {self.builds.builds_dir}; the builds"
                             " are left to it (a real run now would be refused as busy)")
            layout = builds_lib.Layout(names=[], current=layout.current, flat=layout.flat,
                                       installation_linked=True)
        removed = [self.builds.build_dir(n) for n in builds_lib.removals(layout, used)]
        if builds_lib.removes_flat(layout, flat_used):
            removed.append(self.builds.installation)
        self.removed = removed + [self.builds.build_dir(n) for n in layout.leftovers
                                  if n.startswith(builds_lib.REMOVING_PREFIX)]
        relink = (builds_lib.migrates_flat(layout, flat_used)
                  or builds_lib.links_installation(layout))
        if before.complete:
            self.installer.install_dir = source
            self.execstack_plan = self.installer.plan_execstack()
        return dict(before=before, after=before if before.complete else None, source=source,
                    build=source if before.complete else None,
                    changed_layout=bool(self.removed or relink or layout.leftovers))

    def apply(self) -> dict:
        layout, _used, flat_used = self.read()
        changed_layout = False
        if builds_lib.migrates_flat(layout, flat_used):
            with builds_lock(self.builds.state_dir, shared=False):
                builds_lib.migrate_flat(self.builds, builds_lib.next_build_name(layout.names))
            layout, _used, flat_used = self.read()
            changed_layout = True
        source = self.current_dir(layout)
        before = read_app_state(source) if source else AppState()
        if self.params["update"] or not before.complete:
            changed_layout |= self.update(layout, source, before)
        layout, _used, flat_used = self.read()
        current = self.current_dir(layout)
        self.installer.install_dir = current
        if self.execstack_plan is None:  # the current build as it is (no new build made)
            self.execstack_plan = self.installer.plan_execstack()
            if self.execstack_plan is not None:
                self.record_changed = self.installer.apply_execstack(self.execstack_plan)
        changed_layout |= self.collect_garbage()
        return dict(before=before, after=read_app_state(current), source=source,
                    build=current, changed_layout=changed_layout)

    def update(self, layout, source: str | None, before) -> bool:
        """steamcmd into a new build (a copy of ``source``); True when it became current."""
        name = builds_lib.next_build_name(layout.names)
        target = self.builds.build_dir(name)
        reflink = source is not None and builds_lib.reflinks_work(source, self.builds.builds_dir)
        copy_bytes = tree_usage(source) if source is not None and not reflink else 0
        free = builds_lib.free_bytes(self.builds.builds_dir)
        self.disk = dict(needed=copy_bytes + self.headroom, free=free, copy=copy_bytes,
                         reflink=reflink)
        refusal = builds_lib.disk_refusal(free, copy_bytes, self.headroom,
                                          self.builds.builds_dir, reflink)
        if refusal:
            self.installer.fail("disk_full", refusal, disk=self.disk)
        account = self.installer.account
        kept = (f"the current build {source} stays current and unchanged" if source
                else "no build is current yet")
        self.installer.note = f" (side by side: the new build {target} is removed; {kept})"
        os.mkdir(target, 0o755)
        try:
            os.chown(target, account.pw_uid, account.pw_gid)
            if source is not None:
                self.copy(source, target)
                with contextlib.suppress(FileNotFoundError):
                    shutil.copy2(source + builds_lib.RECORD_SUFFIX, self.builds.record(name))
            self.installer.install_dir = target
            self.platform_passes = self.installer.install()
            after = read_app_state(target)
            if not after.complete:
                self.installer.fail("unknown", "steamcmd reported success but the app manifest"
                                    f" of {target} does not show a complete install; the"
                                    " current build was not changed")
            self.execstack_plan = self.installer.plan_execstack()
            if self.execstack_plan is not None:
                self.record_changed = self.installer.apply_execstack(self.execstack_plan)
            if (source is not None and after.buildid == before.buildid
                    and builds_lib.tree_signature(source) == builds_lib.tree_signature(target)):
                raise _NothingNew()
            with builds_lock(self.builds.state_dir, shared=False):
                builds_lib.make_current(self.builds, name)
            return True
        except BaseException as exc:
            # A failed or empty update leaves no half build: the current one is untouched.
            with contextlib.suppress(OSError):
                builds_lib.delete_retired([builds_lib.retire_build(self.builds, name)])
            if isinstance(exc, _NothingNew):
                self.execstack_plan = None  # the current build's own, read again
                self.record_changed = False
                return False
            raise

    def copy(self, source: str, target: str) -> None:
        """cp -a --reflink=auto as the run_as user, who owns both trees."""
        done = subprocess.run(
            ["/usr/bin/cp", "-a", "--reflink=auto", "--", source + "/.", target],
            capture_output=True, text=True, check=False, env={"LANG": "C", "LC_ALL": "C"},
            **self.installer.user_switch())
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[-600:]
            kind = "disk_full" if "No space left" in said else "copy"
            self.installer.fail(kind, f"copying the current build {source} to {target}"
                                f" failed: {said}; the current build was not changed",
                                disk=self.disk)

    def collect_garbage(self) -> bool:
        """Remove what no mount uses and is not current; True when anything changed."""
        with builds_lock(self.builds.state_dir, shared=False):
            layout, used, flat_used = self.read()
            doomed = builds_lib.retire_leftovers(self.builds, layout.leftovers)
            changed = bool(layout.leftovers)
            for name in builds_lib.removals(layout, used):
                doomed.append(builds_lib.retire_build(self.builds, name))
                self.removed.append(self.builds.build_dir(name))
            if builds_lib.removes_flat(layout, flat_used):
                doomed.append(builds_lib.retire_flat(self.builds))
                self.removed.append(self.builds.installation)
            elif builds_lib.links_installation(layout):
                builds_lib.link_installation(self.builds)
                changed = True
        builds_lib.delete_retired(doomed)
        return changed or bool(self.removed)

    def exit(self, outcome: dict) -> None:
        module, installer = self.module, self.installer
        links = plan_steamclient_links(installer.account.pw_dir, installer.steamcmd_dir)
        links_to_fix = [link for link in links if not link_is_correct(link)]
        if not module.check_mode:
            apply_links(installer, links)
        before, after = outcome["before"], outcome["after"]
        plan = self.execstack_plan
        cleared = plan.to_clear if plan is not None else []
        recorded = sorted({*plan.record, *cleared}) if plan is not None else []
        if module.check_mode and plan is not None:
            self.record_changed = recorded != sorted(
                execstack.read_record(installer.record_path()))
        installed = after.complete if after is not None else True
        build_changed = after is None or outcome["build"] != outcome["source"] or (
            before.buildid, before.complete) != (after.buildid, after.complete)
        result = dict(
            changed=bool(build_changed or outcome["changed_layout"] or links_to_fix or cleared
                         or self.record_changed),
            buildid=after.buildid if after is not None else None,
            buildid_before=before.buildid,
            build=outcome["build"],
            build_before=outcome["source"],
            builds_removed=self.removed,
            disk=self.disk,
            installed=installed,
            update_checked=(self.params["update"] or not before.complete)
            and not module.check_mode,
            platform_pass=self.platform_passes > 0,
            platform_pass_attempts=self.platform_passes,
            execstack_cleared=cleared,
            execstack_recorded=recorded,
            links={link.path: link.target for link in links},
            output_tail=installer.tail,
        )
        if module._diff:
            result["diff"] = install_diff(before, links, links_to_fix, cleared,
                                          result["buildid"], installed)
            result["diff"]["before"]["build"] = outcome["source"]
            result["diff"]["after"]["build"] = outcome["build"]
        module.exit_json(**result)


class _NothingNew(Exception):
    """The update found nothing new: its copy is discarded."""


def install_diff(before, links, links_to_fix, cleared, buildid, installed) -> dict:
    return dict(
        before={"buildid": before.buildid, "complete": before.complete,
                "links_correct": sorted(link.path for link in links
                                        if link not in links_to_fix),
                "execstack_requested": cleared},
        after={"buildid": buildid, "complete": installed,
               "links_correct": sorted(link.path for link in links),
               "execstack_requested": []},
    )


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    installer = Installer(module)
    installer.check_inputs()
    if module.params["timeout"] < 1:
        installer.fail("bad_input", "timeout must be at least 1 second")
    if module.params["side_by_side"]:
        SideBySide(module, installer).main()

    before = read_app_state(installer.install_dir)
    links = plan_steamclient_links(installer.account.pw_dir, installer.steamcmd_dir)
    links_to_fix = [link for link in links if not link_is_correct(link)]
    for link in links:
        through = sdk_dir_link(link)
        if through is not None:
            module.warn(
                f"{os.path.dirname(link.path)} is a link to {through} (a Steam client's or"
                " hand-made layout); steamclient.so is never written through it, which would"
                f" replace the file there ({'would be' if module.check_mode else 'is now'}"
                " a directory of its own holding the link)")
    run_needed = module.params["update"] or not before.complete
    after = before
    platform_passes = 0
    execstack_plan = None
    record_changed = False

    if not module.check_mode:
        after, platform_passes, execstack_plan, record_changed = install_and_fix(
            installer, links, run_needed)
    elif not before.complete:
        after = None  # an install would run: its build is only known afterwards
    else:
        execstack_plan = installer.plan_execstack()  # the files as they are now

    installed = after.complete if after is not None else True
    build_changed = after is None or (before.buildid, before.complete) != (
        after.buildid, after.complete)
    cleared = execstack_plan.to_clear if execstack_plan is not None else []
    recorded = sorted({*execstack_plan.record, *cleared}) if execstack_plan is not None else []
    if module.check_mode and execstack_plan is not None:
        # The record would be rewritten when its list of files changes.
        record_changed = recorded != sorted(execstack.read_record(installer.record_path()))
    result = dict(
        changed=bool(build_changed or links_to_fix or cleared or record_changed),
        buildid=after.buildid if after is not None else None,
        buildid_before=before.buildid,
        installed=installed,
        update_checked=run_needed and not module.check_mode,
        platform_pass=platform_passes > 0,
        platform_pass_attempts=platform_passes,
        execstack_cleared=cleared,
        execstack_recorded=recorded,
        links={link.path: link.target for link in links},
        output_tail=installer.tail,
    )
    if module._diff:
        result["diff"] = install_diff(before, links, links_to_fix, cleared, result["buildid"],
                                      installed)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
