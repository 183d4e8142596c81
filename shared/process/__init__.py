"""What every service process shares: settings from FASTLANE_* variables, logging, start-up and stop."""
