"""Hosts (admins): every host of the inventory and whether Ansible can reach it right now;
reconcile a host (re-create the UI's servers on a host that was wiped and converged again)."""

import frame
import streamlit as st

from left4me_ui import hosts, reconcile
from left4me_ui.authz import Actor


@st.cache_data(ttl=30, show_spinner=False)
def reachability(inventory: str, _actor: Actor) -> list[hosts.Reachability]:
    """Per inventory, for 30 s (a ping of every host is slow); the page asked the domain
    whether this admin may see the hosts before it gets here."""
    return hosts.reachability(frame.domain(), _actor)


actor = frame.require_actor()
st.title("Hosts")
if not actor.is_admin:
    st.error("Only admins see the hosts.")
    st.stop()
shown = frame.load(lambda: hosts.inventory_shown(frame.domain(), actor))
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
    reached = reachability(shown, actor)

st.dataframe(
    [{"host": h.host, "reachable": "yes" if h.reachable else "no", "detail": h.detail}
     for h in reached],
    hide_index=True, width="stretch",
)
answered = sum(h.reachable for h in reached)
st.text(f"{answered} of {len(reached)} hosts reachable.")
