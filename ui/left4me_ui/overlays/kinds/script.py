"""Script overlays: a user's build script, run on a host in the collection's sandbox.

The script's text is the overlay's `definition` (`{"script": ...}`); a new one starts from
one of the example scripts the collection ships (roles/overlays/files/scripts/) or empty.
Saving checks it (text, no NUL, at most MAX_SCRIPT_BYTES), bumps the revision and audits.

A build is an "overlay build" job of playbooks/overlay.yml (kind script), like a files
overlay's: the playbook runs left4me.l4d2.script_overlay asynchronously and checks on it
every few seconds (each check adds the script's new lines to the job's log), then
shows the script's output (the module's last 64 lines) whether it succeeded or not. The
module swaps the new tree in only when the script exits 0, so a failed build leaves the
host's previous tree, which `last_build` says in words.

The script travels as a job variable: runner.UnsafeVarsDumper tags it !unsafe, so ansible
never renders a template in it (it is shell, and `{{` is common there).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import yaml

from left4me_ui import audit, authz, jobs
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays import rows
from left4me_ui.overlays.fd_tree import OverlayError
from left4me_ui.overlays.rows import (
    BUILD_ALIKE,
    BUILD_PLAYBOOK,
    KIND_BUILD,
    Overlay,
    load,
    of_this_incarnation,
    require_kind,
)
from left4me_ui.settings import COLLECTIONS_DIR

EXAMPLES_DIR = COLLECTIONS_DIR / "ansible_collections/left4me/l4d2/roles/overlays/files/scripts"
# What playbooks/overlay.yml reads to build a script overlay (build_vars makes them).
BUILD_VARIABLES = frozenset({"left4me_overlay_id", "left4me_overlay_state",
                             "left4me_overlay_incarnation", "left4me_overlay_revision",
                             "left4me_overlay_kind", "left4me_overlay_script"})
MAX_SCRIPT_BYTES = 64 * 1024
# playbooks/overlay.yml's task whose output is the script's log (the module's tail).
LOG_TASK = "Show the build script's output"
# Task results a successful script build reports (playbooks/overlay.yml with
# tasks/overlay-script.yml), until one has succeeded: counting the playbook's tasks would
# miss the included ones. After that, the last script build's count (BUILD_ALIKE).
SCRIPT_BUILD_TASKS = 17


def examples() -> list[str]:
    """The names of the example scripts a new script overlay may start from."""
    return sorted(p.name for p in EXAMPLES_DIR.glob("*.sh") if p.is_file())


def example_text(name: str) -> str:
    if name not in examples():
        raise OverlayError(f"there is no example script {name!r}; pick one of"
                           f" {', '.join(examples())} or start empty")
    return (EXAMPLES_DIR / name).read_text(encoding="utf-8")


def check_script(text: object) -> str:
    """The script as it is stored: text (line ends made \\n), or a clear refusal."""
    if not isinstance(text, str):
        raise OverlayError("the script must be text")
    if "\0" in text:
        raise OverlayError("the script contains a NUL byte; a script is text")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise OverlayError("the script is not valid text (it holds a lone surrogate"
                           " character)") from None
    if size > MAX_SCRIPT_BYTES:
        raise OverlayError(f"the script is {size} bytes; the most a script may be is"
                           f" {MAX_SCRIPT_BYTES} bytes (download big files from the script"
                           " instead)")
    # A script saved from a Windows editor would run as "set -eu\r": /bin/sh refuses that.
    return text.replace("\r\n", "\n")


def _stored(conn: sqlite3.Connection, overlay_id: str) -> str:
    row = conn.execute("SELECT definition FROM overlays WHERE id = ?", (overlay_id,)).fetchone()
    return str(json.loads(row["definition"] or "{}").get("script", ""))


def create(core: Core, actor: Actor, overlay_id: str, example: str | None = None) -> Overlay:
    """A new script overlay owned by the actor, holding the example script `example`
    (a name from `examples()`) or, with None, an empty script."""
    text = "" if example is None else check_script(example_text(example))
    overlay = rows.create(core, actor, overlay_id, kind="script")
    with core.db.connect() as conn:
        conn.execute("UPDATE overlays SET definition = ? WHERE id = ?",
                     (json.dumps({"script": text}), overlay.id))
    return overlay


def script(core: Core, actor: Actor, overlay_id: str) -> str:
    with core.db.connect() as conn:
        overlay = load(conn, authz.current(conn, actor), overlay_id)
        require_kind(overlay, "script")
        return _stored(conn, overlay_id)


def save(core: Core, actor: Actor, overlay_id: str, text: str) -> Overlay:
    """Store a new text of the script (a new revision); the same text again changes nothing."""
    text = check_script(text)
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        require_kind(overlay, "script")
        if _stored(conn, overlay_id) != text:
            conn.execute("UPDATE overlays SET definition = ?, revision = revision + 1,"
                         " updated_at = ? WHERE id = ?",
                         (json.dumps({"script": text}), now, overlay_id))
            audit.record(conn, now, me.name, "save overlay script", f"overlay {overlay_id}",
                         "ok")
        return load(conn, me, overlay_id)


def build_vars(overlay: Overlay, text: str) -> dict:
    """playbooks/overlay.yml's variables for one build of a script overlay."""
    if not text.strip():
        raise OverlayError(f"the script of overlay {overlay.id!r} is empty; write one (or"
                           " start from an example) before building")
    return {"left4me_overlay_id": overlay.id, "left4me_overlay_state": "present",
            "left4me_overlay_incarnation": overlay.incarnation,
            "left4me_overlay_revision": overlay.revision, "left4me_overlay_kind": "script",
            "left4me_overlay_script": text}


def enqueue_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                  host: str) -> int:
    """The script kind's builder: one sandboxed build of the script as stored now."""
    require_kind(overlay, "script")
    extravars = build_vars(overlay, _stored(conn, overlay.id))
    return jobs.enqueue(conn, core, me, kind=KIND_BUILD, host=host,
                        target=f"{host}/overlay {overlay.id} r{overlay.revision}",
                        playbook=BUILD_PLAYBOOK, extravars=extravars,
                        alike=BUILD_ALIKE, first_tasks=SCRIPT_BUILD_TASKS)


# --- the last build, as the page shows it ---------------------------------------------------


@dataclass(frozen=True)
class LastBuild:
    job_id: int
    host: str
    state: str  # a jobs state
    revision: int  # the revision this build ran
    kept_revision: int | None  # what the host has (its last successful build), if any
    log: list[str]  # the script's output (or the job's log when that is not there)
    error: str | None

    @property
    def message(self) -> str:
        if self.state in (jobs.QUEUED, jobs.RUNNING):
            return f"building revision {self.revision} on {self.host} ({self.state})"
        if self.state == jobs.SUCCEEDED:
            return f"revision {self.revision} built on {self.host}; servers use it from" \
                   " their next (re)start"
        if self.kept_revision is not None:
            return (f"build failed; the previous build (revision {self.kept_revision}) is"
                    f" still what servers use on {self.host}")
        return (f"build failed; {self.host} has no earlier build of this overlay, so a server"
                " stacking it cannot start there until a build succeeds")


def _shown_to(conn: sqlite3.Connection, me: Actor, overlay: Overlay, row: sqlite3.Row
              ) -> bool:
    """A build job of this overlay's incarnation that the actor may see (jobs' own rule)."""
    if not of_this_incarnation(overlay.id, overlay.incarnation, overlay.created_at,
                               json.loads(row["extravars"]), row["created_at"]):
        return False
    try:
        jobs._visible(conn, me, row)
    except authz.NotFound:
        return False
    return True


def script_output(events: list[jobs.JobEvent]) -> list[str] | None:
    """The script's lines from the log task's event (`ok: [host] => ` then YAML), or None."""
    for event in events:
        if event.task != LOG_TASK or "=>" not in event.text:
            continue
        try:
            shown = yaml.safe_load(event.text.split("=>", 1)[1])
        except yaml.YAMLError:
            return None  # cut at MAX_EVENT_TEXT: the caller shows the raw log
        lines = shown.get("msg") if isinstance(shown, dict) else None
        if isinstance(lines, list):
            return [str(line) for line in lines]
    return None


def last_build(core: Core, actor: Actor, overlay_id: str) -> LastBuild | None:
    """The newest build job of this overlay (on any host) the actor may see, with its
    script's output; never one of an earlier overlay of the same id."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        candidates = conn.execute(
            "SELECT * FROM jobs WHERE kind = ? AND"
            " json_extract(extravars, '$.left4me_overlay_id') = ? AND"
            " json_extract(extravars, '$.left4me_overlay_state') = 'present'"
            " ORDER BY id DESC", (KIND_BUILD, overlay_id)).fetchall()
        row = next((c for c in candidates if _shown_to(conn, me, overlay, c)), None)
        if row is None:
            return None
        kept = conn.execute("SELECT revision FROM overlay_builds WHERE overlay_id = ? AND"
                            " host = ?", (overlay_id, row["host"])).fetchone()
        rows = conn.execute("SELECT seq, event, host, task, text, at FROM job_events WHERE"
                            " job_id = ? ORDER BY seq", (row["id"],)).fetchall()
    events = [jobs.JobEvent(**dict(r)) for r in rows]
    log = script_output(events)
    if log is None:
        log = [line for e in events for line in e.text.splitlines()]
    return LastBuild(row["id"], row["host"], row["state"],
                     int(json.loads(row["extravars"]).get("left4me_overlay_revision", 0)),
                     None if kept is None else int(kept["revision"]), log, row["error"])

