"""The hostile world itself works: without an attack, Alice's server answers A2S with its
name and her console runs, and Mallory's server runs her own code (the attacks' vehicle)."""

from __future__ import annotations

import pytest
from hostile_world import World

pytestmark = pytest.mark.testhost


def test_alice_answers_and_mallory_runs_her_own_code(world: World):
    world.assert_alice_unharmed("nothing (the world as made)")
    answer = world.mallory_runs("""
        import json, os
        print(json.dumps({"uid": os.getuid(), "cwd": os.getcwd()}))
    """)
    assert answer["rc"] == 0, answer
    assert answer["json"]["cwd"] == "/var/lib/left4me/runtime/mallory/merged", answer
