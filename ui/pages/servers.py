"""Servers: yours (everyone's for admins), making a new one, and one server up close:
its live status, the console line to join it, start / stop / restart / delete, its jobs."""

import frame
import streamlit as st

from left4me_ui import blueprints, jobs, observe, servers

actor = frame.require_actor()
core = frame.domain()
st.title("Servers")

mine = frame.load(lambda: servers.list_for(core, actor))


# What the poller last saw on the hosts (never "running" for a server that is not).
observed = observe.latest(core, actor)


def state_of(server: servers.Server) -> str:
    if server.deleting:
        return "being deleted"
    if not server.deployed:
        return "being created"
    seen = observed.get(server.id)
    if seen is not None:
        return seen.reason
    return f"{'started' if server.desired_state == 'started' else 'stopped'} (not polled yet)"


if mine:
    st.dataframe(
        [{"name": s.name, "host": s.host, "port": s.port, "blueprint": s.blueprint_name,
          "state": state_of(s), "restart to apply": "yes" if s.needs_restart else "",
          **({"owner": s.owner_name} if actor.is_admin else {})} for s in mine],
        hide_index=True, width="stretch",
    )
else:
    st.text("You have no servers yet.")

with st.expander("Create a server", icon=":material/add:", expanded=not mine):
    my_blueprints = [b for b in blueprints.list_for(core, actor) if b.owner_id == actor.user_id]
    hosts = servers.hosts_for(core, actor)
    if not my_blueprints:
        st.text("A server is made from one of your blueprints: create one on Blueprints first.")
    elif not hosts:
        st.text("No host is open to you for new servers; ask an admin.")
    else:
        with st.form("create_server", clear_on_submit=True):
            name = st.text_input("Name", help="Lower case letters, digits and -; e.g. coop2")
            host = st.selectbox("Host", hosts)
            blueprint = st.selectbox("Blueprint", my_blueprints, format_func=lambda b: b.name)
            if st.form_submit_button("Create server", type="primary"):

                def create_and_show() -> None:
                    server_id, _job_id = servers.create(core, actor, name, host, blueprint.id)
                    st.query_params["server"] = str(server_id)

                frame.act(create_and_show)

if not mine:
    st.stop()

server = frame.pick("Server", {s.id: s for s in mine}, "server",
                    lambda s: f"{s.name} on {s.host}")

st.divider()
st.text(f"{server.name} on {server.host}: game port {server.port}, client port "
        f"{server.client_port}, blueprint {server.blueprint_name}, owner {server.owner_name}")
st.caption("Paste this into the game console (~) to join:")
st.code(server.connect_line, language=None)
if server.needs_restart:
    st.warning("Its blueprint changed since it started: restart to apply.",
               icon=":material/restart_alt:")


@st.fragment(run_every=5)
def status_panel(server: servers.Server) -> None:
    frame.require_actor()
    if state_of(server) in ("being created", "being deleted"):
        st.text(f"Status: {state_of(server)}")
        return
    status = frame.live_status(server)
    if status["answers"]:
        st.text(f"Status: answering. Map {status['map']}, players {status['players']}/"
                f"{status['max_players']}, name {status['name']}")
    else:
        st.text(f"Status: not answering on {server.host}:{server.port} "
                f"(wanted: {server.desired_state})")


status_panel(server)

left, middle, right, _ = st.columns([1, 1, 1, 3])
busy = server.deleting
action = None
if left.button("Start", icon=":material/play_arrow:", disabled=busy):
    action = servers.start
if middle.button("Stop", icon=":material/stop:", disabled=busy):
    action = servers.stop
if right.button("Restart", icon=":material/restart_alt:", disabled=busy):
    action = servers.restart
if action is not None:
    frame.act(lambda: action(core, actor, server.id))

with st.expander("Delete this server", icon=":material/delete:"):
    st.text(f"This removes {server.name} from {server.host}. Type its name to confirm.")
    confirm = st.text_input("Server name", key=f"confirm_delete_{server.id}")
    if st.button("Delete server", type="primary", disabled=busy, key="delete_server"):
        frame.act(lambda: servers.delete(core, actor, server.id, confirm))

history = jobs.history(core, actor, server_id=server.id, limit=50)
if history:
    st.subheader("Latest job")
    frame.job_panel(history[0].id, key="server")
    with st.expander("Job history of this server"):
        st.dataframe(frame.job_rows(history), hide_index=True, width="stretch")
