"""archipelago.conf: read exactly as Archipelago reads it, and edited without disturbing it."""
