"""The benchmark service's rules: suite catalog, planning, job lifecycle. No Kafka, gRPC or SQL."""
