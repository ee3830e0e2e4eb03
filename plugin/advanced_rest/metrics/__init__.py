"""Prometheus metrics that Orthanc does not publish, built on prometheus-client."""
