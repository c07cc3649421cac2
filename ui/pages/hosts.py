"""Hosts (admins): every host of the inventory and whether Ansible can reach it right now;
reconcile a host (re-create the UI's servers on a host that was wiped and converged again)."""

from pathlib import Path

import frame
import streamlit as st

from left4me_ui import reconcile, runner, settings


@st.cache_data(ttl=30, show_spinner=False)
def reachability(inventory: str) -> list[runner.Reachability]:
    return runner.check_reachability(Path(inventory))


actor = frame.require_actor()
st.title("Hosts")
if not actor.is_admin:
    st.error("Only admins see the hosts.")
    st.stop()
inventory = settings.inventory_path()
shown = (inventory.relative_to(settings.PROJECT_DIR)
         if inventory.is_relative_to(settings.PROJECT_DIR) else inventory)
st.text(f"Inventory: {shown}")

with st.expander("Reconcile a host", icon=":material/sync:"):
    st.caption("For a host that was wiped and converged again with site.yml: re-creates every "
               "server the UI made on it from the UI's database (overlays, settings, ports, "
               "RCON password), started or stopped as its owner wanted. On a host that lost "
               "nothing it changes nothing, except restarting servers whose blueprint changed.")
    core = frame.domain()
    target = st.selectbox("Host to reconcile", core.inventory().hosts, key="reconcile_target")
    if st.button("Reconcile host", icon=":material/sync:", key="reconcile_host"):
        queued = frame.attempt(lambda: reconcile.reconcile_host(core, actor, target))
        if queued is not frame.REFUSED:
            st.session_state["reconcile_job"] = queued
    if st.session_state.get("reconcile_job"):
        frame.job_panel(st.session_state["reconcile_job"], key="reconcile")

if st.button("Check again", icon=":material/refresh:"):
    reachability.clear()

with st.spinner("Asking every host over SSH (ansible.builtin.ping)..."):
    hosts = reachability(str(inventory))

st.dataframe(
    [{"host": h.host, "reachable": "yes" if h.reachable else "no", "detail": h.detail}
     for h in hosts],
    hide_index=True, width="stretch",
)
answered = sum(h.reachable for h in hosts)
st.text(f"{answered} of {len(hosts)} hosts reachable.")
