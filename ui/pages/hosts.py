"""Hosts (admins): every host of the inventory and whether Ansible can reach it right now."""

from pathlib import Path

import frame
import streamlit as st

from left4me_ui import runner, settings


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
