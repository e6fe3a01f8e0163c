"""Scans and checks spread over a Dask cluster."""
