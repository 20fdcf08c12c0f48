"""E-mail deliveries over SMTP (smtplib in a worker thread).

`security`: `starttls` (default: upgrade the connection before anything else
is said; refuse to go on in clear text), `tls` (implicit TLS, e.g. port 465)
or `none` (loopback relays only). The password is read from its file when
sending and never appears in the environment, in logs or in the delivery log.
"""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from preflight_common.clock import Clock

from preflight_notifier.adapters.secrets import read_secret
from preflight_notifier.domain.delivery import ClaimedDelivery, Outcome, Result, classify_smtp
from preflight_notifier.domain.routing import Receiver

SECURITY_MODES = ("starttls", "tls", "none")
# Long subjects stay on one line (RFC 5322 allows 998 characters); the default 78 folds them oddly.
_POLICY = email.policy.default.clone(max_line_length=200)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: str = "starttls"
    username: str = ""
    credential_file: str = ""
    sender: str = "preflight-notifier@localhost"
    ca_file: str = ""
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"SMTP security must be one of {', '.join(SECURITY_MODES)}")


class EmailSender:
    """Sends e-mail deliveries through one SMTP relay."""

    def __init__(self, settings: SmtpSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def send(self, receiver: Receiver, delivery: ClaimedDelivery) -> Outcome:
        return await asyncio.to_thread(self._send, delivery)

    def _message(self, delivery: ClaimedDelivery) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        message["From"] = self._settings.sender
        message["To"] = delivery.recipient
        message["Subject"] = delivery.subject
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = make_msgid(idstring=delivery.delivery_id, domain="preflight.invalid")
        message["Preflight-Delivery-Id"] = delivery.delivery_id
        message.set_content(delivery.body)
        return message

    def _connect(self, context: ssl.SSLContext) -> smtplib.SMTP:
        s = self._settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _send(self, delivery: ClaimedDelivery) -> Outcome:
        s = self._settings
        context = ssl.create_default_context(cafile=s.ca_file or None)
        try:
            with self._connect(context) as smtp:
                if s.username:
                    password = read_secret(s.credential_file)
                    if password is None:
                        return Outcome(Result.RETRY, error="SMTP password is not configured")
                    smtp.login(s.username, password.decode())
                smtp.send_message(self._message(delivery))
        except smtplib.SMTPRecipientsRefused as exc:
            code, refusal = next(iter(exc.recipients.values()))
            return classify_smtp(code, refusal.decode(errors="replace"))
        except smtplib.SMTPResponseException as exc:
            error: bytes | str = exc.smtp_error
            reply = error.decode(errors="replace") if isinstance(error, bytes) else error
            return classify_smtp(exc.smtp_code, reply)
        except TimeoutError:
            return Outcome(Result.RETRY, error=f"SMTP timed out after {s.timeout:g}s")
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(Result.RETRY, error=f"SMTP failed: {type(exc).__name__}")
        return Outcome(Result.DELIVERED, 250)
