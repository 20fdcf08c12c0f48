"""Follow your organisation's Preflight finding alerts on the event bus (copy and adapt this file).

    python examples/operator_subscriber.py --bootstrap kafka.example:9093 --organisation bank-a \\
        --sector finance --password-file operator-bank-a.password --ca-file kafka-ca.pem

It connects as your organisation's principal (`operator-bank-a`), reads your organisation's alert
topic and your sectors', and prints each alert once as JSON. Only what is addressed to you is on
those topics, and the broker refuses every other one. Respect each alert's TLP marking when you pass
it on. Offsets are committed after an alert was handled: a crash replays it rather than losing it.
`preflight alert follow` does the same from the command line. Needs `pip install 'preflight-sdk[kafka]'`.
"""

from __future__ import annotations

import argparse
import sys

from google.protobuf.json_format import MessageToJson
from preflight.sdk import AlertSubscription, subscribe_alerts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the Preflight alerts addressed to one operator.")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--organisation", required=True, help="your organisation, as registered")
    parser.add_argument("--sector", action="append", default=[], help="one of your sectors (repeatable)")
    parser.add_argument("--password-file", required=True, help="file holding your principal's password")
    parser.add_argument("--ca-file", help="CA certificate of the brokers (PEM)")
    args = parser.parse_args(argv)
    subscription = AlertSubscription(
        bootstrap_servers=args.bootstrap,
        organisation=args.organisation,
        sectors=tuple(args.sector),
        password_file=args.password_file,
        ca_file=args.ca_file,
    )
    try:
        for received in subscribe_alerts(subscription):
            print(MessageToJson(received.alert, indent=None), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
