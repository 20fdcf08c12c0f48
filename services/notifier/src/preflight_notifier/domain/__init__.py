"""Rules of deadlines, alerts, audiences, routing and delivery: no SQL, Kafka or gRPC here."""
