"""The recorder projects the event stream into the Cassandra tables the API reads."""
