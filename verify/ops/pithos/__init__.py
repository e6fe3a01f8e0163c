"""Pithos's database: which maps it needs, and a sample database for tests and demos."""
