"""fastlane's shared package: event contract, topics, settings, Kafka and Cassandra helpers."""
