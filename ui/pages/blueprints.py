"""Blueprints: your named recipes (overlays, first wins, plus settings) that servers use.

A server is live-linked to its blueprint: a change applies at the server's next start, and
a blueprint still used by a server cannot be deleted.
"""

import frame
import streamlit as st

from left4me_ui import blueprints, overlays

actor = frame.require_actor()
core = frame.domain()
st.title("Blueprints")
frame.show_flash()

mine = frame.load(lambda: blueprints.list_for(core, actor))
# The inventory's overlays offered to the user (an admin: all) and the user's own (an
# admin's list holds everyone's).
overlay_choices = sorted(set(blueprints.inventory_overlays_for(core.inventory(), actor))
                         | {o.id for o in frame.load(lambda: overlays.list_for(core, actor))})


def settings_form(key: str, current: blueprints.Blueprint | None) -> tuple | None:
    """The blueprint form; returns (name, overlays, settings) when submitted."""
    was = current.settings if current else blueprints.BlueprintSettings()
    with st.form(key, clear_on_submit=current is None):
        name = st.text_input("Name", value=current.name if current else "",
                             help="Letters, digits, spaces, _ . -")
        overlays = st.multiselect("Overlays (first wins)", overlay_choices,
                                  default=[o for o in (current.overlays if current else ())
                                           if o in overlay_choices])
        hostname = st.text_input("Server name shown in the browser",
                                 value=was.hostname or "")
        left, middle, right = st.columns(3)
        game_map = left.text_input("Map", value=was.map)
        maxplayers = middle.number_input("Max players", 1, 32, value=was.maxplayers)
        tickrate = right.selectbox("Tick rate", [30, 60, 100],
                                   index=[30, 60, 100].index(was.tickrate)
                                   if was.tickrate in (30, 60, 100) else 0)
        # The server's share of its host; empty: the most an admin allows (the ceiling).
        most = blueprints.ceiling(core.settings)
        left, middle, right = st.columns(3)
        memory_max = left.text_input(
            "Memory limit", value=was.memory_max or "", placeholder=most["memory_max"],
            help=f"For example 1G or 512M; at most {most['memory_max']}. Past it the server is"
                 " killed (out of memory). Empty: the most allowed.")
        tasks_max = middle.number_input(
            "Task limit", 32, int(most["tasks_max"]), placeholder=str(most["tasks_max"]),
            value=None if was.tasks_max is None else min(was.tasks_max, int(most["tasks_max"])),
            help="Processes and threads; empty: the most allowed.")
        cpu_quota = right.number_input(
            "CPU limit (% of one core)", 1, int(most["cpu_quota"]),
            placeholder=str(most["cpu_quota"]),
            value=None if was.cpu_quota is None else min(was.cpu_quota, int(most["cpu_quota"])),
            help="100 is one core; empty: the most allowed.")
        label = "Save changes" if current else "Create blueprint"
        if not st.form_submit_button(label, type="primary"):
            return None
    config = blueprints.BlueprintSettings(
        hostname=hostname or None, map=game_map, maxplayers=int(maxplayers),
        tickrate=int(tickrate), cvars=dict(was.cvars), memory_max=memory_max.strip() or None,
        tasks_max=None if tasks_max is None else int(tasks_max),
        cpu_quota=None if cpu_quota is None else int(cpu_quota))
    return name, overlays, config


if mine:
    st.dataframe(
        [{"name": b.name, "overlays": ", ".join(b.overlays), "map": b.settings.map,
          "max players": b.settings.maxplayers, "tick rate": b.settings.tickrate,
          "limits": "memory {memory_max}, {tasks_max} tasks, CPU {cpu_quota}%".format(
              **blueprints.server_limits(b.settings, core.settings)),
          "revision": b.revision, "used by": ", ".join(b.linked_servers)} for b in mine],
        hide_index=True, width="stretch",
    )
else:
    st.text("You have no blueprints yet. Create one; then make a server from it.")

with st.expander("Create a blueprint", icon=":material/add:", expanded=not mine):
    submitted = settings_form("create_blueprint", None)
    if submitted:
        name, overlays, config = submitted
        frame.act(lambda: blueprints.create(core, actor, name, overlays, config),
                  "Blueprint created.")

if mine:
    st.subheader("Change or delete a blueprint")
    chosen = st.selectbox("Blueprint", mine, format_func=lambda b: b.name, key="chosen")
    if chosen.linked_servers:
        st.caption("Servers using it get the change at their next start (restart to apply).")
    submitted = settings_form(f"edit_blueprint_{chosen.id}", chosen)
    if submitted:
        name, overlays, config = submitted
        frame.act(lambda: blueprints.update(core, actor, chosen.id, name=name,
                                            overlays=overlays, config=config), "Saved.")
    if st.button("Delete this blueprint", icon=":material/delete:",
                 disabled=bool(chosen.linked_servers),
                 help="Servers still use it" if chosen.linked_servers else None):
        frame.act(lambda: blueprints.delete(core, actor, chosen.id), "Blueprint deleted.")

