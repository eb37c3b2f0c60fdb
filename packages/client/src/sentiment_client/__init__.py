"""Backend client SDK of the analysis function, for outside Python services (see docs/CLIENT.md).

Not part of any function's deployment: the services install sentiment-shared only.
"""
