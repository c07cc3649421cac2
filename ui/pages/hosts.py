"""Hosts: every host of the inventory and whether Ansible can reach it right now."""

from pathlib import Path

import streamlit as st

from left4me_ui import runner, settings


@st.cache_data(ttl=30, show_spinner=False)
def reachability(inventory: str) -> list[runner.Reachability]:
    return runner.check_reachability(Path(inventory))


inventory = settings.inventory_path()
st.title("Hosts")
st.caption(f"Inventory: `{inventory.relative_to(settings.PROJECT_DIR)}`"
           if inventory.is_relative_to(settings.PROJECT_DIR) else f"Inventory: `{inventory}`")

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
st.write(f"{answered} of {len(hosts)} hosts reachable.")
