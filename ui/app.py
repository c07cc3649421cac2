"""left4me UI: the router and frame. Served by `streamlit run ui/asgi.py` (scripts/demo).

On every rerun: who is signed in (session cookie -> sessions table), then the navigation
built for that person's role. Pages a user may not open are not in the list at all; each
page still asks the domain, which decides every action again. A page that fails in a way
the domain does not explain shows a neutral message; the traceback goes to the log only.
"""

import logging

import frame
import streamlit as st

log = logging.getLogger("left4me_ui")

st.set_page_config(page_title="left4me", page_icon=":material/sports_esports:", layout="wide")

actor = frame.signed_in()
if actor is None:
    st.title("left4me")
    st.info("You are not logged in, or your session has ended. Reload the page to log in.",
            icon=":material/lock:")
    st.stop()

pages = {
    "": [
        st.Page("pages/servers.py", title="Servers", icon=":material/dns:", default=True),
        st.Page("pages/activity.py", title="Activity", icon=":material/monitoring:"),
        st.Page("pages/console.py", title="Console and log", icon=":material/terminal:"),
        st.Page("pages/blueprints.py", title="Blueprints", icon=":material/layers:"),
        st.Page("pages/overlays.py", title="Overlays", icon=":material/folder_open:"),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/history:"),
        st.Page("pages/account.py", title="Account", icon=":material/person:"),
    ],
}
if actor.is_admin:
    pages["Admin"] = [
        st.Page("pages/users.py", title="Users", icon=":material/group:"),
        st.Page("pages/hosts.py", title="Hosts", icon=":material/lan:"),
        st.Page("pages/audit.py", title="Audit", icon=":material/policy:"),
    ]
navigation = st.navigation(pages)

with st.sidebar:
    st.caption("left4me: Left 4 Dead 2 servers on your own hosts")
    st.text(f"Signed in as {actor.name} ({actor.role})")
    if st.button("Log out", icon=":material/logout:", key="log_out"):
        token = frame.session_token()
        if token:
            frame.log_out(token)
        st.session_state.pop(frame.TEST_TOKEN_KEY, None)
        st.rerun()

try:
    navigation.run()
except Exception:  # st.stop() and st.rerun() are BaseExceptions: they pass through
    # A traceback shows paths, SQL and values (an inventory's stderr): the log's, not the page's.
    log.exception("page %s failed for %s", navigation.url_path or "(default)", actor.name)
    st.error("Something went wrong on our side, and it has been logged. Try again in a"
             " moment; if it keeps happening, tell an admin the time it happened.",
             icon=":material/error:")
