"""The UI's Streamlit-free core: everything it does to hosts goes through ansible-runner."""
