"""Type stub of the entry rules and fingerprint sets both reference checks share (verify/native/_refsets.pyx)."""

COUNTER_NAMES: tuple[str, ...]
REFS_SHOWN: int  # entries recorded per missing object
