"""The Overlays page's parts for script overlays: create one from an example, edit its
script, build it on a host (job panel), the last build's outcome and output, delete.

Every rule is the domain's (left4me_ui.overlays.kinds.script and overlays); this only draws. The
script is shown in a text area and its output with st.code: never as markdown.
"""

from __future__ import annotations

import frame
import streamlit as st

from left4me_ui import overlays, servers
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import script
from overlay_editors import parts

EMPTY = "(empty script)"


def create_form(core: Core, actor: Actor, expanded: bool) -> None:
    with (st.expander("Create a script overlay", icon=":material/terminal:",
                      expanded=expanded),
          st.form("create_script_overlay", clear_on_submit=True)):
        new_id = st.text_input("Script overlay id", key="new_script_overlay_id",
                               help=f"The folder name on every host: {overlays.ID_RULE}")
        seed = st.selectbox("Start from", [EMPTY, *script.examples()],
                            key="new_script_seed",
                            help="One of the example scripts the collection ships; edit it"
                                 " after creating the overlay.")
        st.caption("A script overlay is filled by its build script, which runs on the host"
                   " in a sandbox: it writes the overlay's files under /overlay, may reach"
                   " the public internet only, and a failed run keeps the previous build.")
        if st.form_submit_button("Create script overlay", type="primary"):
            frame.act(lambda: script.create(core, actor, new_id,
                                                    None if seed == EMPTY else seed),
                      "Script overlay created.")


def draw(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    # Read again: a selectbox keeps the row it returned before a save, revision and all.
    chosen = frame.load(lambda: overlays.get(core, actor, chosen.id))
    st.caption(f"Script overlay, revision {chosen.revision}. The script runs as the game"
               " host's runtime user with /overlay (the overlay's tree, starting from the"
               " previous build) as the only writable folder.")
    text = frame.load(lambda: script.script(core, actor, chosen.id))
    edit, build, whole = st.tabs(["Script", "Build on host", "Delete overlay"])
    with edit:
        # Keyed by revision: after a save (or another session's) the stored text shows.
        with st.form(f"script_{chosen.id}_{chosen.revision}"):
            new_text = st.text_area("Script", value=text, height=420,
                                    key=f"script_text_{chosen.id}_{chosen.revision}",
                                    help=f"At most {script.MAX_SCRIPT_BYTES} bytes"
                                         " of text; it runs by its #! line, else /bin/sh.")
            if st.form_submit_button("Save script", type="primary"):
                frame.act(lambda: script.save(core, actor, chosen.id, new_text),
                          "Script saved.")
        example = st.selectbox("Example", script.examples(), key="script_example")
        if st.button("Replace the script with this example", icon=":material/restart_alt:",
                     key="use_script_example"):
            frame.act(lambda: script.save(
                core, actor, chosen.id, script.example_text(example)),
                f"The script is now {example}.")
    with build:
        _build(core, actor, chosen)
    with whole:
        parts.delete_button(core, actor, chosen, key="delete_script_overlay")


def _build(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    choices = frame.attempt(lambda: servers.hosts_for(core, actor))
    if choices is not frame.REFUSED and choices:
        host = st.selectbox("Host", choices, key="script_build_host")
        parts.build_button(core, actor, chosen, host, key="build_script_overlay")
    parts.build_panel(chosen, key="script_build")
    last = frame.attempt(lambda: script.last_build(core, actor, chosen.id))
    if last is frame.REFUSED:
        return
    if last is None:
        st.text(f"Not built on any host yet (revision {chosen.revision} now).")
        return
    st.subheader("Last build")
    shown = frame.plain(f"Job {last.job_id}: {last.message}")
    if last.state == "failed":
        st.error(shown, icon=":material/error:")
    elif last.state == "succeeded":
        st.success(shown, icon=":material/check:")
    else:
        st.info(shown, icon=":material/hourglass_top:")
    st.code("\n".join(last.log) or "(no output)", language=None, height=300)
