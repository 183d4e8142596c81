"""fastlane's shared package, in layers (each imports only the ones above it):

- `contract`: the public, versioned event contract and the topics that carry it;
- `domain`: rules free of I/O (schedules, farms, redaction, links, webhook targets);
- `infra`: Kafka, Cassandra and network plumbing;
- `process`: settings, logging, start-up and stop of a service process.
"""
