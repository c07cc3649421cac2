"""The Overlays page's editor of a Workshop overlay (pages/overlays.py draws it for one):
its items and collections as ids or links, Resolve (each item's title, size and last update,
asked of the Steam Web API through a host), Build on host with the job's live log (one line
per download as it finishes), and delete. Every rule is the domain's
(left4me_ui.overlays.kinds.workshop)."""

from __future__ import annotations

import frame
import streamlit as st

from left4me_ui import overlays, servers
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import workshop
from overlay_editors import parts

_STATUS = {"cached": "in the host's cache", "would_download": "to download",
           "downloaded": "downloaded"}


def _rows(found: workshop.Resolved) -> list[dict]:
    return [{"id": i.publishedfileid, "title": i.title,
             "size": "" if i.error else overlays.size_text(i.file_size),
             "last update (UTC)": frame.when(i.time_updated) if i.time_updated else "",
             "state": f"error: {i.error}" if i.error else _STATUS.get(i.status, i.status)}
            for i in found.items]


def draw(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    ids = frame.load(lambda: workshop.definition(core, actor, chosen.id))
    _ids_form(core, actor, chosen, ids)
    st.caption("Servers stacking this overlay find each item as"
               " left4dead2/addons/<id>.vpk. Resolve asks the Steam Web API through the host"
               " chosen below; nothing is downloaded until you build.")
    choices = frame.attempt(lambda: servers.hosts_for(core, actor))
    if choices is frame.REFUSED or not choices:
        st.text("No host you may use: an admin decides which hosts users may use.")
        return
    host = st.selectbox("Host", choices, key="workshop_host")
    resolve_col, build_col = st.columns(2)
    if resolve_col.button("Resolve", icon=":material/travel_explore:", key="workshop_resolve",
                          disabled=ids.empty):
        with st.spinner(f"Asking the Steam Web API through {host}..."):
            frame.attempt(lambda: workshop.resolve(core, actor, chosen.id, host))
    parts.build_button(core, actor, chosen, host, key="workshop_build", place=build_col,
                       disabled=ids.empty)
    _resolved(core, actor, chosen, ids)
    parts.build_panel(chosen, key="overlay_build")
    parts.builds_table(core, actor, chosen)
    parts.delete_button(core, actor, chosen)


def _ids_form(core: Core, actor: Actor, chosen: overlays.Overlay,
              ids: workshop.Definition) -> None:
    with st.form(f"workshop_ids_{chosen.id}"):
        items = st.text_area(
            "Items", value="\n".join(ids.items), height=150,
            key=f"workshop_items_{chosen.id}",
            help="Workshop items, one a line: the id (123456789) or the item's page,"
                 f" e.g. {workshop.EXAMPLE_LINK}")
        collections = st.text_area(
            "Collections", value="\n".join(ids.collections), height=100,
            key=f"workshop_collections_{chosen.id}",
            help="Workshop collections, one a line (id or page); their items, and those of"
                 " collections they hold, are added")
        if st.form_submit_button("Save items", type="primary"):
            frame.act(lambda: workshop.set_ids(core, actor, chosen.id, items, collections),
                      "Saved the Workshop items.")


def _resolved(core: Core, actor: Actor, chosen: overlays.Overlay,
              ids: workshop.Definition) -> None:
    """The last resolve's items, or what to do to see them."""
    found = frame.attempt(lambda: workshop.last_resolved(core, actor, chosen.id))
    if found not in (None, frame.REFUSED):
        st.dataframe(_rows(found), hide_index=True, width="stretch", key="workshop_items_table")
        total = sum(i.file_size for i in found.items if not i.error)
        st.caption(f"{len(found.items)} item(s), {overlays.size_text(total)}, resolved through"
                   f" {found.host} at {frame.when(found.at)} UTC"
                   + (f"; collections {', '.join(found.collections)}" if found.collections
                      else ""))
    elif found is None and not ids.empty:
        st.text("Resolve to see each item's title, size and last update.")
