"""The guide's "Finalizing upgrade" as one resumable flow over the store contract."""
