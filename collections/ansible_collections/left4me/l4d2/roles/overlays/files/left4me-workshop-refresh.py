# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""left4me-workshop-refresh: refresh every Workshop overlay from its recorded definition.

    /usr/bin/python3 -I left4me-workshop-refresh [--config-dir DIR] [--state-dir DIR]
                                                 [--steamcmd-dir DIR] [--overlay ID ...]

Run by left4me-workshop-refresh.service (daily timer) as the runtime user. Reads
{config_dir}/overlays/ID.workshop.json, written by the overlays role:

    {"id": "maps", "items": ["1"], "collections": ["2"], "fail_on_item_error": true,
     "api_url": "https://api.steampowered.com", "workers": 4}

and an optional Web API key from {config_dir}/workshop-api-key. Each overlay is
brought up to date with the same code as the workshop_overlay module (left4me_workshop.py
next to this file): unchanged items cost one details request per 100 and no
download; updated items are downloaded, and links change only when all succeeded.
Items on SteamPipe (no usable file_url) are fetched with steamcmd from --steamcmd-dir
(default {state_dir}/steam), run by this process, i.e. as the runtime user, with the
code srcds_install uses (left4me_steamcmd.py next to this file).
Progress goes to stdout (the journal) and to {state_dir}/workshop_cache/fetch.log.
Every overlay is tried, even after one whose definition is malformed or whose refresh
failed; the last line names the overlays that failed and the exit status is then 1.
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import left4me_common  # noqa: E402
import left4me_steamcmd  # noqa: E402
import left4me_workshop as workshop  # noqa: E402

PROG = "left4me-workshop-refresh"


def say(line):
    print(f"{PROG}: {line}", flush=True)


def overlay_name(path):
    """The overlay id a definition file is named for (what the role wrote it as)."""
    return os.path.basename(path).removesuffix(".workshop.json")


def load_definition(path):
    """One definition; a malformed file fails only its own overlay, by name."""
    with open(path, encoding="utf-8") as fh:
        try:
            definition = json.load(fh)
        except ValueError as exc:
            raise workshop.WorkshopError(f"{path} is not valid JSON ({exc}); re-run the"
                                         " overlays role to rewrite it") from None
    if not isinstance(definition, dict):
        raise workshop.WorkshopError(f"{path} holds no JSON object; re-run the overlays role")
    if definition.get("id") != overlay_name(path):
        raise workshop.WorkshopError(f"{path} names overlay {definition.get('id')!r}, not"
                                     f" {overlay_name(path)!r}; re-run the overlays role")
    return definition


def definition_paths(config_dir, only):
    paths = sorted(glob.glob(os.path.join(config_dir, "overlays", "*.workshop.json")))
    return [path for path in paths if not only or overlay_name(path) in only]


def read_key(config_dir):
    try:
        with open(os.path.join(config_dir, "workshop-api-key"), encoding="utf-8") as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def steamcmd_runner(directory):
    """steamcmd as this process's user (the service's User=), with a deadline."""

    def run(argv, cwd, timeout):
        env = dict(os.environ, LANG="C", LC_ALL="C")
        result = left4me_steamcmd.run_streaming(argv, env=env, cwd=cwd, timeout=timeout)
        return result.rc, result.output

    return workshop.Steamcmd(directory, run)


def refresh(definition, state_dir, api_key, steamcmd):
    api = workshop.SteamApi(definition.get("api_url") or workshop.DEFAULT_API_URL, api_key)
    result = workshop.sync_overlay(
        definition.get("id"),
        definition.get("items", []),
        definition.get("collections", []),
        api=api,
        state_dir=state_dir,
        fail_on_item_error=bool(definition.get("fail_on_item_error", True)),
        workers=int(definition.get("workers", 4)),
        echo=say,
        steamcmd=steamcmd,
    )
    for error in result.warnings:
        say(f"warning: {error}")
    if result.failed:
        say(f"FAILED {result.msg}")
        return False
    counts = {}
    for item in result.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    say(f"overlay {result.overlay_id}: {summary}; {result.bytes_fetched} bytes fetched,"
        f" {result.api_calls} API call(s), {'changed' if result.changed else 'unchanged'}")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description="Refresh left4me Workshop overlays.")
    parser.add_argument("--config-dir", default="/etc/left4me")
    parser.add_argument("--state-dir", default=left4me_common.DEFAULT_STATE_DIR)
    parser.add_argument("--steamcmd-dir", help="directory of steamcmd.sh (default STATE/steam)")
    parser.add_argument("--overlay", action="append", default=[], help="only this overlay id")
    args = parser.parse_args(argv)
    steamcmd = steamcmd_runner(args.steamcmd_dir or os.path.join(args.state_dir, "steam"))
    api_key = read_key(args.config_dir)
    failed = []
    paths = definition_paths(args.config_dir, set(args.overlay))
    if not paths:
        say("no Workshop overlays recorded; nothing to do")
    # Every overlay is tried: one broken definition or failed download must not keep the
    # others from their updates.
    for path in paths:
        try:
            if not refresh(load_definition(path), args.state_dir, api_key, steamcmd):
                failed.append(overlay_name(path))
        except (workshop.WorkshopError, OSError, ValueError, TypeError) as exc:
            say(f"FAILED overlay {overlay_name(path)}: {exc}")
            failed.append(overlay_name(path))
    if failed:
        say(f"{len(failed)} of {len(paths)} overlay(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
