"""The operations: scan, check, the fixes, finalize and the Pithos database check."""
