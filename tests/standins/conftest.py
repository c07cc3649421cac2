"""Stand-in fixtures; the implementation lives in standin_harness so other suites can import it."""

from standin_harness import start_srcds, start_webapi  # noqa: F401 - re-exported fixtures
