"""Jobs: every action is a job; its history (yours, or everyone's for admins) and its log."""

import frame
import streamlit as st

from left4me_ui import jobs

actor = frame.require_actor()
core = frame.domain()
st.title("Jobs")

history = frame.attempt(lambda: jobs.history(core, actor, limit=200))
if history is frame.REFUSED:
    st.stop()
if not history:
    st.text("No jobs yet. Starting, stopping or creating a server makes one.")
    st.stop()

st.caption("Everyone's jobs (you are an admin)." if actor.is_admin else
           "Your jobs and the jobs on your servers.")
st.dataframe(frame.job_rows(history), hide_index=True, width="stretch")

by_id = {j.id: j for j in history}
wanted = st.query_params.get("job")
default = int(wanted) if wanted and wanted.isdigit() and int(wanted) in by_id else history[0].id
chosen = st.selectbox("Show job", list(by_id), index=list(by_id).index(default),
                      format_func=lambda i: f"{i}: {by_id[i].kind} {by_id[i].target}")
st.query_params["job"] = str(chosen)
frame.job_panel(chosen, key="jobs")
