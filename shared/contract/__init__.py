"""The public, versioned contract: every message fastlane puts on Kafka and the topics that carry them."""
