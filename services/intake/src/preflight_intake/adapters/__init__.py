"""The outside world: database, encryption, protobuf mapping, events, the gRPC servicer."""
