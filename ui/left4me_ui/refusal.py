"""What the domain refuses, in words a person can act on.

Every refusal a page shows as it is derives from Refusal; pages catch REFUSED (frame.attempt),
never a list of their own. Two more kinds of error read the same way: the collection's
InstanceError (a server's settings checked by srcds_instance's own rules) and ValueError
(bad input, e.g. accounts.InvalidInput).
"""

from __future__ import annotations

from ansible_collections.left4me.l4d2.plugins.module_utils._instance import InstanceError


class Refusal(Exception):
    """An action refused, with a message a person can act on."""


REFUSED: tuple[type[Exception], ...] = (Refusal, InstanceError, ValueError)
