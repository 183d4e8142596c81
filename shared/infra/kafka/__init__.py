"""Kafka plumbing: `admin` (topics), `producer` (the idempotent producer), `consumer` (the at-least-once loop)."""
