"""Protocol-true stand-ins for Steam services that left4me cannot reach from its machines.

Everything in this package is standard library only: it is copied onto test hosts that have
nothing but python3 (Debian trixie), so no third-party import may ever appear here.
"""
