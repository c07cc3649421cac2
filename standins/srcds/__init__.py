"""Simulated Left 4 Dead 2 dedicated server (srcds): A2S over UDP, Source RCON over TCP."""
