"""Audit (admins): who did what to what, when, and how it ended; newest first."""

import frame
import streamlit as st

actor = frame.require_actor()
st.title("Audit")
limit = st.select_slider("Rows", options=[50, 200, 1000], value=200)
entries = frame.load(lambda: frame.audit_entries(actor, limit))
st.dataframe(
    [{"when (UTC)": frame.when(e.at), "who": e.actor, "action": e.action, "target": e.target,
      "outcome": e.outcome, "detail": e.detail} for e in entries],
    hide_index=True, width="stretch",
)
