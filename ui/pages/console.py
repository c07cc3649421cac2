"""Console and log of one server: RCON commands run on its host (owner and admins), and its
journal followed while the page is open. Output is shown as plain monospace text only."""

import frame
import streamlit as st

from left4me_ui import authz, host_reads, live, log_follow, servers

actor = frame.require_actor()
core = frame.domain()
st.title("Console and log")

# The console is for the servers this person may manage; the domain checks it again.
mine = [s for s in frame.load(lambda: servers.list_for(core, actor))
        if authz.may_manage(actor, s.owner_id) and s.deployed]
if not mine:
    st.text("You have no running servers to open a console on yet.")
    st.stop()

server = frame.pick("Server", {s.id: s for s in mine}, "server",
                    lambda s: f"{s.name} on {s.host}", key="console_server")

st.subheader("Console")
st.caption("One command per line, e.g. status, or changelevel c2m1_highway. Runs on the "
           f"server's host over RCON on 127.0.0.1; at most {live.CONSOLE_DEADLINE:.0f} s.")
fast = host_reads.fast(core, server.host)
if not fast:
    st.caption(":material/hourglass: This console is slower here (about 2 s a command): each"
               " command is an Ansible run to the host, as the UI has no direct SSH to it (the"
               " awx job backend, LEFT4ME_UI_FAST_READS=off, or a host without left4me-read).")
history = frame.attempt(lambda: live.console_history(core, actor, server.id))
recent = [] if history is frame.REFUSED else history
recalled = st.selectbox("Recall an earlier command", [""] + list(
    dict.fromkeys(e.command for e in recent)), key=f"recall_{server.id}")
with st.form(f"console_{server.id}", clear_on_submit=False):
    command = st.text_input("Command", value=recalled, key=f"command_{server.id}")
    sent = st.form_submit_button("Run", type="primary", icon=":material/terminal:")
if sent:
    with st.spinner(f"running {command.strip()[:60]} on {server.host}..."):
        answer = frame.attempt(lambda: live.run_console(core, actor, server.id, command))
    if answer is not frame.REFUSED:
        st.session_state[f"console_answer_{server.id}"] = answer
answer = st.session_state.get(f"console_answer_{server.id}")
if answer is not None:
    st.text(f"] {answer.command}   (answered in {answer.round_trip:.2f} s,"
            f" {answer.seconds:.2f} s of it on the host)")
    st.code(answer.output or "(no output)", language=None)
if recent:
    with st.expander("Command history of this server"):
        st.dataframe([{"when (UTC)": frame.when(e.at), "by": e.user_name,
                       "command": e.command, "outcome": e.outcome} for e in recent],
                     hide_index=True, width="stretch")

st.subheader("Log")
# On the fast path one stream per server feeds a buffer (log_follow) and the panel redraws
# from it, asking the host nothing; elsewhere each refresh is one read after the cursor.
streamed = fast and frame.attempt(lambda: live.follow_log(core, actor, server.id)) not in (
    None, frame.REFUSED)
LOG_REFRESH = log_follow.PANEL_SECONDS if streamed else 3  # seconds between redraws
follow = st.toggle("Follow (new lines show within a second while this page is open)" if streamed
                   else f"Follow (refresh every {LOG_REFRESH} s while this page is open)",
                   value=True, key=f"follow_{server.id}")
LINES_KEPT = 1000


@st.fragment(run_every=LOG_REFRESH if follow else None)
def log_panel(server_id: int) -> None:
    frame.require_actor()
    seen = st.session_state.setdefault(f"_log_{server_id}", {"cursor": None, "lines": []})
    view = frame.attempt(lambda: live.follow_log(core, actor, server_id)) if follow else None
    if view is frame.REFUSED:
        return
    if view is not None:  # the followed buffer; its cursor carries on if following stops
        seen["cursor"], seen["lines"] = view.cursor, list(view.lines)[-LINES_KEPT:]
        if view.error:
            st.caption(f":material/sync_problem: {view.error}")
    else:
        page = frame.attempt(lambda: live.read_log(core, actor, server_id, seen["cursor"]))
        if page is not frame.REFUSED:
            seen["cursor"] = page.cursor
            seen["lines"] = (seen["lines"] + page.lines)[-LINES_KEPT:]
    st.code("\n".join(seen["lines"]) or "(nothing logged yet)", language=None, height=400)


log_panel(server.id)
