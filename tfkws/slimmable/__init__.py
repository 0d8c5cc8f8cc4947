"""Pipelines over trained slimmable supernet runs: export one width (``extract``) and pick the
width to deploy under a memory budget (``select``). They sit above conversion and verification,
which they drive; the supernets themselves are ordinary models in ``tfkws.models``."""
