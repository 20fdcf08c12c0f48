"""The outside world: database, protobuf codec, routing file, webhook and e-mail senders, gRPC."""
