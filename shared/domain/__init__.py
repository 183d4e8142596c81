"""Rules of the domain, free of I/O: schedules and backoff, farms, redaction, resource links, webhook targets."""
