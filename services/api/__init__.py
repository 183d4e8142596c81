"""The HTTP API: validates requests, publishes orders to Kafka, answers queries from Cassandra."""
