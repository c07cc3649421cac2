"""left4me UI: the router and frame. Run with `scripts/demo` (or `streamlit run ui/app.py`)."""

import streamlit as st

st.set_page_config(page_title="left4me", page_icon=":material/sports_esports:", layout="wide")

navigation = st.navigation([
    st.Page("pages/hosts.py", title="Hosts", icon=":material/dns:", default=True),
])
st.sidebar.caption("left4me: Left 4 Dead 2 servers on your own hosts")
navigation.run()
