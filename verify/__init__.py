"""archverify: prove that an Archipelago v0.4 upgrade migrated every object and map."""

__version__ = "0.1.0"
