"""What every overlay editor (files, Workshop, script) draws the same way: where the overlay
is built, and its delete button."""

from __future__ import annotations

import frame
import streamlit as st

from left4me_ui import overlays
from left4me_ui.authz import Actor
from left4me_ui.core import Core


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


def delete_button(core: Core, actor: Actor, chosen: overlays.Overlay,
                  key: str = "delete_overlay") -> None:
    """Delete, refused (and said why) while a blueprint stacks the overlay."""
    if chosen.in_use:
        st.caption(f"Used by blueprint(s) {chosen.used_by_text()}: take it out of them before"
                   " deleting the overlay.")
    if st.button("Delete this overlay", icon=":material/delete:", key=key,
                 disabled=chosen.in_use):
        frame.act(lambda: overlays.delete(core, actor, chosen.id), "Overlay deleted.")
