"""fastlane's services: api, scheduler, runner, recorder."""
