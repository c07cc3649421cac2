"""Users (admins): every account, adding one, disabling or enabling, resetting a password."""

import frame
import streamlit as st

from left4me_ui import accounts

actor = frame.require_actor()
core = frame.domain()
st.title("Users")
frame.show_flash()

users = frame.load(lambda: accounts.list_users(core, actor))

st.dataframe(
    [{"name": u.name, "role": u.role, "disabled": "yes" if u.disabled else "no",
      "server limit": "default" if u.max_servers is None else str(u.max_servers),
      "created": frame.when(u.created_at)} for u in users],
    hide_index=True, width="stretch",
)

with st.expander("Add a user", icon=":material/person_add:"), \
        st.form("add_user", clear_on_submit=True):
    name = st.text_input("User name", help="Lower case letters, digits, . _ -")
    password = st.text_input("Initial password", type="password",
                             help=f"At least {accounts.MIN_PASSWORD_LENGTH} characters; "
                                  "tell it to the user, who changes it on Account.")
    role = st.selectbox("Role", ["user", "admin"])
    if st.form_submit_button("Add user", type="primary"):
        frame.act(lambda: accounts.create_user(core, actor, name, password, role),
                  "User added.")

others = [u for u in users if u.id != actor.user_id]
if others:
    st.subheader("Change a user")
    chosen = st.selectbox("User", others, format_func=lambda u: u.name)
    col_state, col_reset = st.columns(2)
    with col_state:
        label = "Enable" if chosen.disabled else "Disable (ends their sessions)"
        if st.button(label, key="toggle_disabled"):
            frame.act(lambda: accounts.set_disabled(core, actor, chosen.id, not chosen.disabled),
                      "User enabled." if chosen.disabled else "User disabled.")
    with col_reset, st.form("reset_password", clear_on_submit=True):
        new_password = st.text_input("New password", type="password")
        if st.form_submit_button("Reset password (ends their sessions)"):
            frame.act(lambda: accounts.reset_password(core, actor, chosen.id, new_password),
                      "Password reset; their sessions have ended.")
