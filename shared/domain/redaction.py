"""What fastlane never shows: secret env values and webhook header values."""

REDACTED = "***"


def redact(envs: dict[str, str], blacklist: list[str]) -> dict[str, str]:
    """Values of envs whose name contains a blacklisted word (case-insensitive) become ***."""
    words = [w.lower() for w in blacklist if w]
    return {name: REDACTED if any(w in name.lower() for w in words) else value for name, value in envs.items()}
