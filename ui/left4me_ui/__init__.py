"""The UI's Streamlit-free core: everything it does to hosts goes through ansible-runner.

Importing any of its modules first puts the collection on sys.path (settings does), so a
module may import the collection's module_utils whichever module a process imports first.
"""

from left4me_ui import settings as _settings  # noqa: F401
