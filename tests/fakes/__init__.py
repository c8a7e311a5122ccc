"""Loopback servers standing in for external services (BigQuery, Airbyte) in offline tests."""
