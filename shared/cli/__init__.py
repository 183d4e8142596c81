"""The `fastlane` command (docs/cli.md)."""
