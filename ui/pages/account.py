"""Account: who you are, and changing your password (your other sessions end)."""

import frame
import streamlit as st

from left4me_ui import accounts

actor = frame.require_actor()
st.title("Account")
st.text(f"User name: {actor.name}\nRole: {actor.role}")

st.subheader("Change password")
with st.form("change_password", clear_on_submit=True):
    current = st.text_input("Current password", type="password")
    new = st.text_input("New password", type="password",
                        help=f"At least {accounts.MIN_PASSWORD_LENGTH} characters.")
    again = st.text_input("New password again", type="password")
    submitted = st.form_submit_button("Change password", type="primary")

if submitted:
    if new != again:
        st.error("The two new passwords differ; nothing was changed.")
    elif frame.attempt(lambda: accounts.change_password(
            frame.domain(), actor, current, new, keep_token=frame.session_token())
            ) is not frame.REFUSED:
        st.success("Password changed. Your other sessions have ended; this one goes on.")
