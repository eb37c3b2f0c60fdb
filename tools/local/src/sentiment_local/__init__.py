"""The local pipeline: the whole sentiment flow on this machine against an embedded AWS emulator."""
