#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: srcds_update_check
short_description: Ask Steam whether a newer Left 4 Dead 2 server build is out, downloading nothing
version_added: 0.2.0
description:
  - Compares the shared game install (C({state_dir}/installation), as
    M(left4me.l4d2.srcds_install) made it) with what Steam offers, and says whether an update
    is available, the install is up to date, or it cannot tell and why.
  - The install is read from its C(steamapps/appmanifest_222860.acf) (C(buildid), complete or
    not) and C(left4dead2/steam.inf) (C(PatchVersion)).
  - O(method=steamcmd) runs C(steamcmd.sh +login anonymous +app_info_update 1
    +app_info_print 222860 +app_info_print 222860 +quit) as O(run_as) and reads the public
    branch's C(buildid) and C(timeupdated). C(app_info_update 1) refreshes steamcmd's appinfo
    cache (without it steamcmd prints what it cached, however old); the second print is
    there because steamcmd has answered the first one of a run with only C(No app info for
    AppID 222860 found, requesting...). An offered build older than the installed one is
    reported as unknown (a stale cache, or a rollback), never as an update.
  - O(method=webapi) asks C(ISteamApps/UpToDateCheck/v1) of O(api_url) for app 550 with the
    installed C(PatchVersion); an answer counts once two agree (it has been seen to say "out
    of date" wrongly), at most three requests.
  - Neither downloads game content, and the install, its manifest and the servers are never
    touched. steamcmd does what it does at every start (it updates itself and its appinfo
    cache in C({state_dir}/steam)).
author:
  - left4me developers (@left4me)
options:
  method:
    description:
      - How to ask Steam. V(steamcmd) gives the offered build id; V(webapi) needs no
        steamcmd start (seconds, not minutes) and answers by version, not build.
    type: str
    choices: [steamcmd, webapi]
    default: steamcmd
  run_as:
    description:
      - User steamcmd runs as (the owner of C({state_dir}/steam)); the module drops
        privileges itself, so it must run as root unless it runs as this user.
    type: str
    default: left4me
  api_url:
    description:
      - Base URL of the Steam Web API, for O(method=webapi). The role
        M(left4me.l4d2.game_host) passes the Workshop's (C(overlays_workshop_api_url)), so a
        test host asks the stand-in.
    type: str
    default: https://api.steampowered.com
  timeout:
    description:
      - Seconds steamcmd may take (its self-update and login come first), or one Web API
        request.
    type: int
    default: 300
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.attributes.read_only
notes:
  - Anonymous login only; app info of 222860 needs no licence, so no password is used.
seealso:
  - module: left4me.l4d2.srcds_install
  - name: LinuxGSM's update check (core_steamcmd.sh)
    description: The same comparison of the manifest's buildid with app_info_print's.
    link: https://github.com/GameServerManagers/LinuxGSM
"""

EXAMPLES = r"""
- name: Is there a newer game build?
  left4me.l4d2.srcds_update_check:
  become: true
  register: game_update

- name: Ask the Web API instead (no steamcmd start)
  left4me.l4d2.srcds_update_check:
    method: webapi
  register: game_update

- name: Say it
  ansible.builtin.debug:
    msg: "{{ game_update.reason }}"
"""

RETURN = r"""
update_available:
  description:
    - V(true) a newer build is offered, V(false) up to date, V(null) unknown (see RV(reason)).
  returned: always
  type: bool
  sample: true
reason:
  description: The verdict in a sentence, or why there is none.
  returned: always
  type: str
  sample: "update available: Steam offers build 16140413 on branch 'public'; 16140412 is installed"
method:
  description: How Steam was asked.
  returned: always
  type: str
  sample: steamcmd
installed_build:
  description: C(buildid) of the install's manifest; null when none is installed.
  returned: always
  type: int
  sample: 16140412
installed_version:
  description: C(PatchVersion) of the install's C(steam.inf); null when missing.
  returned: always
  type: str
  sample: 2.2.4.412
offered_build:
  description: The public branch's build Steam offers (O(method=steamcmd)); null otherwise.
  returned: always
  type: int
  sample: 16140413
offered_time:
  description: When that build went live on the branch (epoch seconds; O(method=steamcmd)).
  returned: always
  type: int
  sample: 1729086400
required_version:
  description: The version Steam requires, digits without dots (O(method=webapi), when out of date).
  returned: always
  type: int
  sample: 224413
output_tail:
  description: Last lines of steamcmd's output (O(method=steamcmd)); empty otherwise.
  returned: always
  type: list
  elements: str
"""

import os  # noqa: E402
import pwd  # noqa: E402
import urllib.parse  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils import (  # noqa: E402
    _steam_update as steam_update,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
    LANG_C,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._steamcmd import (  # noqa: E402
    classify_output,
    run_streaming,
)

ARGUMENT_SPEC = dict(
    method=dict(type="str", choices=list(steam_update.METHODS), default="steamcmd"),
    run_as=dict(type="str", default=DEFAULT_RUNTIME_USER),
    api_url=dict(type="str", default=steam_update.DEFAULT_API_URL),
    timeout=dict(type="int", default=300),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
)


def ask_steamcmd(module, steamcmd_dir: str) -> tuple[steam_update.Offer, list[str]]:
    """Run the check as the runtime user; Steam's offer (or why none) and steamcmd's tail."""
    steamcmd_sh = os.path.join(steamcmd_dir, "steamcmd.sh")
    if not os.path.isfile(steamcmd_sh):
        return steam_update.Offer(problem=f"steamcmd not found: {steamcmd_sh} is missing"
                                  " (role game_host installs it)"), []
    try:
        account = pwd.getpwnam(module.params["run_as"])
    except KeyError:
        module.fail_json(msg=f"run_as user {module.params['run_as']!r} does not exist on this"
                         " host")
    switch = {}
    if account.pw_uid != os.geteuid():
        if os.geteuid() != 0:
            module.fail_json(msg=f"running steamcmd as {account.pw_name!r} needs root"
                             " (become: true)")
        switch = dict(user=account.pw_uid, group=account.pw_gid,
                      extra_groups=os.getgrouplist(account.pw_name, account.pw_gid))
    env = {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name,
           "LOGNAME": account.pw_name, **LANG_C}
    try:
        run = run_streaming(steam_update.check_argv(steamcmd_sh), env=env, cwd=steamcmd_dir,
                            timeout=float(module.params["timeout"]), **switch)
    except OSError as exc:
        return steam_update.Offer(problem=f"could not run {steamcmd_sh}: {exc}"), []
    offer = steam_update.parse_app_info(run.output)
    if offer.problem and (run.rc is None or run.rc != 0):
        failure = classify_output(run.output, run.rc)
        if failure is not None:
            offer = steam_update.Offer(problem=f"steamcmd failed ({failure.kind}):"
                                       f" {failure.detail}")
    return offer, run.tail


def ask_webapi(module, installed: steam_update.Installed) -> steam_update.Offer:
    url = steam_update.up_to_date_url(module.params["api_url"], installed.patch_version or "")
    timeout = float(module.params["timeout"])
    return steam_update.ask_until_agreed(
        lambda: steam_update.parse_up_to_date(*steam_update.fetch(url, timeout)))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if urllib.parse.urlsplit(params["api_url"]).scheme not in ("http", "https"):
        module.fail_json(msg=f"api_url must be an http or https URL, not {params['api_url']!r}")
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    install_dir = os.path.join(params["state_dir"], "installation")
    steamcmd_dir = os.path.join(params["state_dir"], "steam")
    installed = steam_update.read_installed(install_dir)
    tail: list[str] = []
    problem = steam_update.installed_problem(installed, params["method"])
    if not installed.complete or problem:
        offer = steam_update.Offer(problem=problem)  # decide says why; Steam is not asked
    elif params["method"] == "steamcmd":
        offer, tail = ask_steamcmd(module, steamcmd_dir)
    else:
        offer = ask_webapi(module, installed)
    result = steam_update.decide(installed, offer, params["method"], install_dir=install_dir,
                                 steamcmd_dir=steamcmd_dir)
    module.exit_json(changed=False, output_tail=tail, **result)


if __name__ == "__main__":
    main()
