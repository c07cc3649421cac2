# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the collection's unit tests share: where the collection is, and Steam's stand-ins.

Everything a test needs from the collection is found relative to COLLECTION, so the tests
run the same from this checkout and from a copy installed from the built tarball. Some
tests also run the project's stand-ins for Steam (a simulated srcds, Steam Web API and
steamcmd): those live in the left4me repository (standins/, tests/standins/), not in the
collection. In a checkout they are found beside the collection
(collections/ansible_collections/left4me/l4d2); elsewhere the tests that need them skip,
saying why (the fixtures below), and every other test still runs.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

COLLECTION = pathlib.Path(__file__).resolve().parents[2]
# The checkout holds the collection at collections/ansible_collections/left4me/l4d2.
_CHECKOUT = COLLECTION.parents[3]
CHECKOUT = _CHECKOUT if (_CHECKOUT / "tests" / "standins" / "standin_harness.py").is_file() \
    and (_CHECKOUT / "standins" / "__init__.py").is_file() else None
NO_STANDINS = (f"needs the left4me repository's stand-ins (standins/, tests/standins/), which"
               f" are not beside this collection ({COLLECTION}); run it from a checkout")

if CHECKOUT is not None:
    sys.path.insert(0, str(CHECKOUT / "tests" / "standins"))
    # pylint: disable-next=unused-import
    from standin_harness import start_srcds, start_webapi  # noqa: F401 - re-exported fixtures
else:
    @pytest.fixture
    def start_srcds():
        pytest.skip(NO_STANDINS)

    @pytest.fixture
    def start_webapi():
        pytest.skip(NO_STANDINS)


@pytest.fixture
def standin_harness():
    """tests/standins/standin_harness.py of the checkout (make_game_root, free_port, ...)."""
    if CHECKOUT is None:
        pytest.skip(NO_STANDINS)
    import standin_harness as harness  # pylint: disable=import-outside-toplevel
    return harness


@pytest.fixture
def bootstrap_steamcmd(standin_harness):  # pylint: disable=redefined-outer-name
    """`bootstrap_steamcmd(home)`: a steamcmd home of the stand-in, as Valve's tarball unpacks."""

    def bootstrap(home: pathlib.Path) -> None:
        result = standin_harness.run_standin(
            [sys.executable, "-m", "standins.steamcmd", "bootstrap", str(home)], cwd=CHECKOUT)
        assert result.returncode == 0, result.stdout

    return bootstrap
