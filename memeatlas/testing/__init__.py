"""Builders of tiny offline models and synthetic data for tests and benchmarks."""
