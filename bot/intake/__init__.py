"""Intake: how events reach the bot (webhook server, parsing, ingest, dispatcher, poller and housekeeping)."""
