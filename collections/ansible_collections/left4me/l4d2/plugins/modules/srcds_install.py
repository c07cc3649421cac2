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
error_kind:
  description:
    - On failure, what went wrong - V(disk_full), V(disk_write), V(content), V(network),
      V(appinfo_timeout), V(self_update), V(steamcmd_dir_owner), V(no_subscription),
      V(login_failed), V(steam_guard), V(invalid_platform), V(missing_configuration),
      V(run_timeout) (O(timeout) passed), V(offline), V(execstack), V(unknown), or
      V(bad_input).
  returned: failure
  type: str
  sample: disk_full
"""

import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils import (  # noqa: E402
    _execstack as execstack,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    user_account,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._steamcmd import (  # noqa: E402
    PLATFORM_PASS_KINDS,
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
        self.install_dir = os.path.normpath(self.params["install_dir"])
        self.steamcmd_dir = os.path.normpath(self.params["steamcmd_dir"])
        self.tail: list[str] = []
        self.account = self._account(self.params["run_as"])
        self.remaining = float(self.params["timeout"])

    def fail(self, kind: str, msg: str, **extra) -> None:
        self.module.fail_json(msg=msg, error_kind=kind, output_tail=self.tail, **extra)

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

    def _run(self, argv: list[str]):
        env = dict(os.environ)
        env.update(HOME=self.account.pw_dir, USER=self.account.pw_name,
                   LOGNAME=self.account.pw_name, LANG="C", LC_ALL="C")
        switch = {}
        if self.account.pw_uid != os.geteuid():
            switch = dict(user=self.account.pw_uid, group=self.account.pw_gid,
                          extra_groups=os.getgrouplist(self.account.pw_name,
                                                       self.account.pw_gid))
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
)


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
    problems = [problem for problem in map(target_problem, links) if problem]
    if problems:
        installer.fail("unknown", "; ".join(problems))
    try:
        apply_steamclient_links(links, installer.account.pw_uid, installer.account.pw_gid)
    except LinkLayoutError as exc:
        installer.fail("bad_input", str(exc))
    except OSError as exc:
        installer.fail("unknown", f"could not create the ~/.steam sdk links: {exc}")
    # After steamcmd: an update or validate may have put Valve's bytes back.
    execstack_plan = installer.plan_execstack()
    if execstack_plan is not None:
        record_changed = installer.apply_execstack(execstack_plan)
    return after, platform_passes, execstack_plan, record_changed


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
