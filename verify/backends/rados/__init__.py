"""RADOS stores: Ceph pools read through librados."""
