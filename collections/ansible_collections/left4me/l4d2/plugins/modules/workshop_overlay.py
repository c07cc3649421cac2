#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workshop_overlay
short_description: Build a left4me overlay from Steam Workshop items and collections
version_added: 0.1.0
description:
  - Makes C({state_dir}/overlays/{id}/left4dead2/addons/) hold one symlink per Workshop item,
    named C({publishedfileid}.vpk) and pointing at the item's file in the shared cache
    C({state_dir}/workshop_cache/{publishedfileid}.vpk). Ids name the files because they are
    unique and stable; uploaders' file names are neither.
  - Collections, nested ones too, are expanded with C(ISteamRemoteStorage/GetCollectionDetails/v1);
    a collection seen once is not fetched again, so cycles end. Item details come from
    C(GetPublishedFileDetails/v1), one form-encoded POST per 100 ids.
  - An item is downloaded only when the cache lacks it or holds another version (its
    C(time_updated) or C(file_size) differ from the cache index C(workshop_cache/index.json)).
    A refresh of unchanged items therefore makes one details request per 100 items (plus one
    per collection nesting level) and downloads nothing.
  - Downloads run in O(workers) threads, each into a temp file inside the cache directory
    (same filesystem, so the rename cannot fail with EXDEV), checked against the announced
    size and only then renamed into place; no partial file is ever visible.
  - Links change only after every download succeeded, so a failed run leaves the overlay as
    the previous run left it and an instance never mounts a partial overlay. Links this module
    made (those pointing into the cache) that are no longer wanted are removed; any other file
    or link in C(addons/) is left alone, and one standing where an item's link must go is an error.
  - A download must start with the VPK signature (C(0x55AA1234)) before anything is written to
    the cache. Items hosted on SteamPipe (UGC v2) have no C(file_url), or one that serves the
    preview image; they are fetched in one batched run of
    C(steamcmd +workshop_download_item 550 ID) from O(steamcmd_dir), as O(owner) (never root),
    into C(workshop_cache/.steamcmd/); the item's VPK is then copied into the cache through a temp
    file and renamed, like an HTTP download, and steamcmd's copy is removed.
  - Removed (Steam result 9), banned, non-Left 4 Dead 2 (app 550) ids, and SteamPipe items when
    steamcmd is missing, are per-item errors; O(fail_on_item_error) decides whether they fail the
    whole overlay.
  - An id in O(collections) that Steam answers as no collection with children (result 9, or
    result 1 without children, as Steam answers a plain item either way) is looked up as an item
    in the same details request; a plain item is used as an item, with a warning to list it
    under O(items); a collection that lists no items is a per-item error.
  - An answer that lists nothing never removes what the overlay holds. When a collection did
    not expand, an id is missing from the answer, or no id is usable, the overlay's existing
    links stay (with a warning) even with O(fail_on_item_error=false).
  - An HTTP 200 that is not the endpoint's JSON (an empty body, or C({"response":{}}), which
    Steam under load or a rejected O(api_key) cause) is retried like a 5xx; if it persists the
    run fails naming those causes, before anything is downloaded or linked.
  - Progress lines (one per download with bytes and seconds) are appended to
    C(workshop_cache/fetch.log), because a module cannot stream its output; RV(items) carries the
    same timings.
  - Runs hold an exclusive lock on C(workshop_cache/.lock), so the daily refresh service and an
    Ansible run never download into the cache at the same time.
author:
  - left4me developers (@left4me)
options:
  items:
    description: Workshop item ids (app 550).
    type: list
    elements: str
    default: []
  collections:
    description: Workshop collection ids; their items, and those of nested collections, are added.
    type: list
    elements: str
    default: []
  fail_on_item_error:
    description:
      - When true, one unusable id (removed, banned, another app, no file, unknown collection)
        fails the run and nothing changes.
      - When false, the overlay is built from the usable items and the errors are reported in
        RV(items) and as warnings.
      - A failed download always fails the run and leaves the links unchanged.
    type: bool
    default: true
  max_size:
    description:
      - The most the overlay's usable items may hold together, by the C(file_size) Steam
        reports, a size with an optional V(K), V(M), V(G) or V(T) suffix (powers of 1024).
        The Workshop cache is shared by every overlay on the host.
      - Checked as soon as the items are resolved (in check mode too), before anything is
        downloaded or linked; above it the run fails naming the total, the cap and the
        largest items, and nothing in the cache or the overlay changes.
    type: str
    default: 10G
  group:
    description:
      - Group of the overlay directories, links and cache files, which belong to O(owner);
        defaults to the primary group of O(owner).
    type: str
  api_url:
    description: Base URL of the Steam Web API (a stand-in in tests).
    type: str
    default: https://api.steampowered.com
  api_key:
    description: Steam Web API key, sent in the POST body. The endpoints used work without one.
    type: str
  workers:
    description: Parallel downloads.
    type: int
    default: 4
  attempts:
    description:
      - Tries per request before giving up, for connection errors, cut-off downloads, HTTP 429
        and 5xx, and Web API answers that are not its JSON. Waits O(retry_delay) seconds,
        doubled after each try; no Web API retry starts two minutes after its first try.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry.
    type: float
    default: 1.0
  timeout:
    description: Socket timeout in seconds for each request.
    type: float
    default: 60.0
  steamcmd_dir:
    description:
      - Directory holding C(steamcmd.sh), used for items Steam serves only through SteamPipe.
        Defaults to C({state_dir}/steam), where role game_host installs it.
    type: path
  steamcmd_timeout:
    description: Seconds one steamcmd run (all SteamPipe items of the overlay) may take.
    type: int
    default: 1800
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.owner
  - left4me.l4d2.common.overlay_id
attributes:
  check_mode:
    description:
      - Calls the Web API read-only (collection and item details) to predict downloads and link
        changes; never downloads, links, locks or writes anything.
    support: full
  diff_mode:
    description: Shows the overlay's Workshop links (file names) before and after.
    support: full
notes:
  - Called C(left4me.l4d2.workshop_fetch) in version 0.1.0; that name still works, deprecated,
    until version 1.0.0.
  - Needs outbound HTTPS to api.steampowered.com and Steam's download hosts.
  - Runs as root to set O(owner); the refresh service runs the same code as the runtime user.
seealso:
  - name: ISteamRemoteStorage
    description: Steam Web API documentation of the two endpoints used.
    link: https://partner.steamgames.com/doc/webapi/ISteamRemoteStorage
"""

EXAMPLES = r"""
- name: Build the campaign overlay from a collection and two items
  left4me.l4d2.workshop_overlay:
    id: campaigns
    collections: ["3000000001"]
    items: ["1000000001", "1000000002"]

- name: Build an overlay, skipping items Steam has removed or banned
  left4me.l4d2.workshop_overlay:
    id: community-maps
    collections: ["3000000001"]
    fail_on_item_error: false
  register: maps

- name: Show items Steam refused
  ansible.builtin.debug:
    msg: "{{ maps['items'] | selectattr('status', 'eq', 'error') | map(attribute='error') }}"
"""

RETURN = r"""
path:
  description: The overlay directory.
  returned: always
  type: str
  sample: /var/lib/left4me/overlays/campaigns
items:
  description:
    - One entry per Workshop id (items, and collections that failed), with C(publishedfileid),
      C(status) (C(cached), C(downloaded), C(would_download) in check mode, or C(error)),
      C(title), C(filename), C(file_size), C(time_updated), C(bytes) fetched, C(seconds) spent
      downloading, C(source) (C(http) from C(file_url), or C(steamcmd) for SteamPipe items),
      C(note) (why steamcmd was needed) and C(error).
  returned: always
  type: list
  elements: dict
  sample:
    - publishedfileid: "1000000001"
      status: downloaded
      title: Stand-in add-on 1000000001
      filename: 1000000001.vpk
      file_size: 65536
      time_updated: 1600000000
      bytes: 65536
      seconds: 0.031
      source: http
      note: ""
      error: ""
collections:
  description: Collection ids that were expanded, nested ones included.
  returned: always
  type: list
  elements: str
  sample: ["3000000001", "3000000002"]
bytes_fetched:
  description: Bytes downloaded by this run.
  returned: always
  type: int
  sample: 65536
downloaded:
  description: Number of items downloaded (or that would be, in check mode).
  returned: always
  type: int
  sample: 1
links_set:
  description: Link names created or repointed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [1000000001.vpk]
links_removed:
  description: Stale link names removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [1000000009.vpk]
api_calls:
  description: Web API requests sent, retries included (downloads not counted).
  returned: always
  type: int
  sample: 2
log:
  description: The progress log of the cache.
  returned: always
  type: str
  sample: /var/lib/left4me/workshop_cache/fetch.log
"""

import os  # noqa: E402
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
    owner_ids,
    parse_size,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._steamcmd import (  # noqa: E402
    run_streaming,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._workshop import (  # noqa: E402
    DEFAULT_MAX_SIZE,
    LOG_NAME,
    SteamApi,
    Steamcmd,
    WorkshopError,
    sync_overlay,
)


def steamcmd_as(owner, directory, timeout):
    """steamcmd run as the runtime user (this module runs as root), like srcds_install does."""
    account = pwd.getpwnam(owner)

    def run(argv, cwd, deadline):
        env = dict(os.environ, HOME=account.pw_dir, USER=account.pw_name,
                   LOGNAME=account.pw_name, LANG="C", LC_ALL="C")
        switch = {}
        if account.pw_uid != os.geteuid():
            switch = dict(user=account.pw_uid, group=account.pw_gid,
                          extra_groups=os.getgrouplist(account.pw_name, account.pw_gid))
        result = run_streaming(argv, env=env, cwd=cwd, timeout=deadline, **switch)
        return result.rc, result.output

    return Steamcmd(directory, run, float(timeout))


ARGUMENT_SPEC = dict(
    id=dict(type="str", required=True),
    items=dict(type="list", elements="str", default=[]),
    collections=dict(type="list", elements="str", default=[]),
    fail_on_item_error=dict(type="bool", default=True),
    max_size=dict(type="str", default=DEFAULT_MAX_SIZE),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
    owner=dict(type="str", default=DEFAULT_RUNTIME_USER),
    group=dict(type="str"),
    api_url=dict(type="str", default="https://api.steampowered.com"),
    api_key=dict(type="str", no_log=True),
    workers=dict(type="int", default=4),
    attempts=dict(type="int", default=3),
    retry_delay=dict(type="float", default=1.0),
    timeout=dict(type="float", default=60.0),
    steamcmd_dir=dict(type="path"),
    steamcmd_timeout=dict(type="int", default=1800),
)


def sync(params, check_mode: bool):
    """Bring the overlay to the wanted items (or predict it, in check mode)."""
    api = SteamApi(params["api_url"], params["api_key"], timeout=params["timeout"],
                   attempts=params["attempts"], retry_delay=params["retry_delay"])
    return sync_overlay(
        params["id"],
        params["items"],
        params["collections"],
        api=api,
        state_dir=params["state_dir"],
        owner=owner_ids(params["owner"], params["group"], WorkshopError,
                        "owner {name!r} does not exist; create the runtime user first"),
        fail_on_item_error=params["fail_on_item_error"],
        workers=params["workers"],
        check_mode=check_mode,
        max_total_bytes=parse_size(params["max_size"], "max_size", WorkshopError),
        attempts=params["attempts"],
        retry_delay=params["retry_delay"],
        timeout=params["timeout"],
        steamcmd=steamcmd_as(
            params["owner"],
            params["steamcmd_dir"] or os.path.join(params["state_dir"], "steam"),
            params["steamcmd_timeout"]),
    )


def report(synced, state_dir: str, diff: bool) -> dict:
    """The module result of one sync; ``changed`` as if it succeeded."""
    links = synced.links
    after = sorted((set(links.before) - set(links.remove)) | set(links.create))
    result = dict(
        changed=synced.changed and not synced.failed,
        path=synced.path,
        items=[item.report() for item in synced.items],
        collections=synced.collections,
        bytes_fetched=synced.bytes_fetched,
        downloaded=sum(item.status in ("downloaded", "would_download") for item in synced.items),
        links_set=sorted(links.create),
        links_removed=sorted(links.remove),
        api_calls=synced.api_calls,
        log=f"{state_dir.rstrip('/')}/workshop_cache/{LOG_NAME}",
    )
    if diff:
        result["diff"] = dict(
            before="".join(f"{name}\n" for name in links.before),
            after="".join(f"{name}\n" for name in after),
            before_header=f"{synced.path}/left4dead2/addons (Workshop links)",
            after_header=f"{synced.path}/left4dead2/addons (Workshop links)",
        )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        synced = sync(params, module.check_mode)
    except (WorkshopError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = report(synced, params["state_dir"], module._diff)
    if synced.failed:
        result["changed"] = synced.bytes_fetched > 0  # the cache may have gained files
        module.fail_json(msg=synced.msg, **result)
    for warning in synced.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
