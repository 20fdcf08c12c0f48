"""Dead-lettering always succeeds: a copy too large for the broker becomes a reference."""

from __future__ import annotations

from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import DeadLetters
from preflight_common.envelope import KafkaRecord, headers_dict
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_testkit.clients import read_records
from preflight_testkit.fixtures import TopicFactory

# A malformed record just under the broker's default limit (1 MiB + 12 bytes per batch) on its
# topic: its copy with the four headers dead-lettering adds is over it.
OVERSIZED = 1_048_450


def test_a_record_whose_copy_would_not_fit_is_dead_lettered_as_a_reference(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("oversized")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(topic), partitions=1)])
    publisher = EventPublisher(kafka_settings, source="preflight-tests", send_timeout=10)
    try:
        publisher.publish_record(
            topic, KafkaRecord(key=b"sub-1", value=b"\xff" * OVERSIZED, headers=[("ce_type", b"x.Unknown")])
        )
        [original] = read_records(kafka_settings, topic, expected=1, timeout=60)
        small = KafkaRecord(key=b"sub-2", value=b"\xff" * 10, headers=[("ce_type", b"x.Unknown")])
        publisher.publish_record(topic, small)
        [_, second] = read_records(kafka_settings, topic, expected=2, timeout=60)

        dead_letters = DeadLetters(publisher)
        dead_letters.send(original, "unknown ce_type 'x.Unknown'")
        dead_letters.send(second, "unknown ce_type 'x.Unknown'")
    finally:
        publisher.close()

    reference, copy = read_records(kafka_settings, Topics.dlq(topic), expected=2, timeout=60)
    headers = headers_dict(reference.headers)
    assert reference.key == b"sub-1"
    assert reference.value == b""
    assert headers == {
        "preflight_dlq_reason": "unknown ce_type 'x.Unknown'",
        "preflight_dlq_topic": topic,
        "preflight_dlq_partition": "0",
        "preflight_dlq_offset": str(original.offset),
        "preflight_dlq_omitted": f"value ({OVERSIZED} bytes) and original headers: the copy was too large",
    }
    # A copy that fits is still the record itself.
    assert (copy.key, copy.value) == (b"sub-2", b"\xff" * 10)
    assert headers_dict(copy.headers)["ce_type"] == "x.Unknown"
    assert headers_dict(copy.headers)["preflight_dlq_offset"] == str(second.offset)
