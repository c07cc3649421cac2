"""Jobs: every action is a job; its history (yours, or everyone's for admins) and its log."""

import frame
import streamlit as st

from left4me_ui import jobs

actor = frame.require_actor()
core = frame.domain()
st.title("Jobs")

history = frame.load(lambda: jobs.history(core, actor, limit=200))
if not history:
    st.text("No jobs yet. Starting, stopping or creating a server makes one.")
    st.stop()

st.caption("Everyone's jobs (you are an admin)." if actor.is_admin else
           "Your jobs and the jobs on your servers.")
st.dataframe(frame.job_rows(history), hide_index=True, width="stretch")

chosen = frame.pick("Show job", {j.id: j for j in history}, "job",
                    lambda j: f"{j.id}: {j.kind} {j.target}")
frame.job_panel(chosen.id, key="jobs")
