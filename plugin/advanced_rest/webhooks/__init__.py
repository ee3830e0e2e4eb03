"""Webhooks: job events, kept in a durable outbox, POSTed signed to configured endpoints, retried."""
