"""What the Overlays page draws the same way for every kind: the list of overlays, the
create form (files and Workshop; a script overlay has its own, in script.py), where an
overlay is built, its Build on host button with the job's panel, and its delete button."""

from __future__ import annotations

import frame
import streamlit as st

from left4me_ui import disk_share, overlays
from left4me_ui.authz import Actor
from left4me_ui.core import Core


def _built_on(core: Core, actor: Actor, overlay: overlays.Overlay) -> str:
    found = frame.attempt(lambda: overlays.builds(core, actor, overlay.id))
    if found is frame.REFUSED:
        return ""
    return ", ".join(f"{b.host} r{b.revision}" + ("" if b.current else " (out of date)")
                     for b in found)


def overview(core: Core, actor: Actor, mine: list[overlays.Overlay]) -> None:
    """The actor's overlays as a table, and their disk share."""
    if mine:
        st.dataframe(
            [{"id": o.id, "kind": o.kind, "owner": o.owner_name, "revision": o.revision,
              "used by blueprints": o.used_by_text(quoted=False),
              "built on": _built_on(core, actor, o), "changed (UTC)": frame.when(o.updated_at)}
             for o in mine],
            hide_index=True, width="stretch",
        )
    else:
        st.text("You have no overlays yet. Create one, then add files to it.")
    # Each overlay counts at its cap against the user's disk share, servers at their writes
    # cap.
    st.caption(frame.load(lambda: disk_share.for_actor(core, actor)).text)


def create_form(core: Core, actor: Actor, expanded: bool) -> None:
    """A new files or Workshop overlay (a script overlay starts from an example: script.py)."""
    with (st.expander("Create an overlay", icon=":material/add:", expanded=expanded),
          st.form("create_overlay", clear_on_submit=True)):
        new_id = st.text_input("Overlay id", key="new_overlay_id",
                               help=f"The folder name on every host: {overlays.ID_RULE}")
        new_kind = st.radio("Kind", ("files", "workshop"), horizontal=True,
                            key="new_overlay_kind",
                            help="files: text files you edit here; workshop: Steam Workshop"
                                 " items and collections, downloaded on the host")
        if st.form_submit_button("Create overlay", type="primary"):
            frame.act(lambda: overlays.create(core, actor, new_id, new_kind),
                      "Overlay created.")


def builds_table(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    """Per host: the revision built there, and whether it is out of date."""
    builds = frame.attempt(lambda: overlays.builds(core, actor, chosen.id))
    if builds is not frame.REFUSED and builds:
        st.dataframe([{"host": b.host, "built revision": b.revision,
                       "state": "up to date" if b.current else
                       f"out of date (revision {chosen.revision} now)",
                       "built (UTC)": frame.when(b.built_at)} for b in builds],
                     hide_index=True, width="stretch")
    elif builds is not frame.REFUSED:
        st.text(f"Not built on any host yet (revision {chosen.revision} now).")


def build_button(core: Core, actor: Actor, chosen: overlays.Overlay, host: str, key: str,
                 place=st, disabled: bool = False) -> None:
    """Build on host (in `place`: the page or a column); the build's job is then shown by
    build_panel, through reruns."""
    if place.button("Build on host", icon=":material/build:", key=key, disabled=disabled):
        queued = frame.attempt(lambda: overlays.build(core, actor, chosen.id, host))
        if queued is not frame.REFUSED:
            st.session_state[f"overlay_build_job_{chosen.id}"] = queued


def build_panel(chosen: overlays.Overlay, key: str) -> None:
    """The job panel of the overlay's last build queued from this session, if any."""
    if st.session_state.get(f"overlay_build_job_{chosen.id}"):
        frame.job_panel(st.session_state[f"overlay_build_job_{chosen.id}"], key=key)


def delete_button(core: Core, actor: Actor, chosen: overlays.Overlay,
                  key: str = "delete_overlay") -> None:
    """Delete, refused (and said why) while a blueprint stacks the overlay."""
    if chosen.in_use:
        st.caption(f"Used by blueprint(s) {chosen.used_by_text()}: take it out of them before"
                   " deleting the overlay.")
    if st.button("Delete this overlay", icon=":material/delete:", key=key,
                 disabled=chosen.in_use):
        frame.act(lambda: overlays.delete(core, actor, chosen.id), "Overlay deleted.")
