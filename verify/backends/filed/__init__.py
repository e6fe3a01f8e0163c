"""filed stores: NFS-shared dirs of files."""
