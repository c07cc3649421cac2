"""Overlays: your own files overlays (configs, cfg packs, add-ons), Workshop overlays and
script overlays, which blueprints stack.

A build puts an overlay's files on a host (a playbooks/overlay.yml job); a server stacking
it builds it there first when the host's copy is older, so "Build on host" is for seeing
the result early. Servers take a new build at their next restart.

This page lists the overlays, offers the create forms and routes the chosen overlay to its
kind's editor (ui/overlay_editors/: files, workshop, script); every rule is the domain's
(left4me_ui.overlays).
"""

import frame
import streamlit as st
from overlay_editors import files, parts, script, workshop

from left4me_ui import overlays

EDITORS = {"files": files, "workshop": workshop, "script": script}

actor = frame.require_actor()
core = frame.domain()
st.title("Overlays")
frame.show_flash()

mine = frame.load(lambda: overlays.list_for(core, actor))
parts.overview(core, actor, mine)
parts.create_form(core, actor, expanded=not mine)
script.create_form(core, actor, expanded=False)

if not mine:
    st.stop()

st.subheader("Contents")
chosen = st.selectbox("Overlay", mine, format_func=lambda o: f"{o.id} ({o.kind})",
                      key="overlay")
EDITORS[chosen.kind].draw(core, actor, chosen)
