"""The sender adapter (services/notifier/ports.py: Sender): one delivery as a signed webhook POST, or an e-mail
over SMTP."""

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from html import escape

import httpx

from services.notifier.plan import Delivery, signature, webhook_body
from services.notifier.ports import Failed
from shared.domain.addresses import resolves_private
from shared.process.settings import NotifierSettings

USER_AGENT = "fastlane-notifier/1"


class HttpAndMailSender:
    """Webhooks over HTTP (only the status line is read), e-mail over SMTP; every attempt bounded in time."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    def send(self, delivery: Delivery, now: datetime) -> int | None:
        """Deliver once; the HTTP status code of a webhook (None for e-mail). Raises Failed."""
        if delivery.channel == "webhook":
            return self.post(delivery, now)
        self.mail(delivery)
        return None

    def post(self, delivery: Delivery, now: datetime) -> int:
        if self.settings.webhooks_refuse_private:
            try:
                private = resolves_private(delivery.url)
            except OSError as exc:
                raise Failed(f"cannot resolve the webhook's host: {exc}") from exc
            if private:
                raise Failed(f"refused: the webhook's host resolves to {private}, not a public address", retry=False)
        body = webhook_body(delivery, now)
        headers = {
            **delivery.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Fastlane-Event": delivery.event,
            "X-Fastlane-Delivery": str(delivery.delivery_id),
            "X-Fastlane-Timestamp": str(int(now.timestamp())),
        }
        if self.settings.webhook_secret:
            headers["X-Fastlane-Signature"] = signature(self.settings.webhook_secret, body)
        try:
            # Only the status line is read: a receiver that answers with an endless body costs nothing.
            with self.http.stream("POST", delivery.url, content=body, headers=headers) as response:
                pass
        except httpx.TimeoutException as exc:
            raise Failed(f"no answer within {self.settings.webhook_timeout_s:g}s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise Failed(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise Failed(f"HTTP {response.status_code}", status_code=response.status_code)
        return response.status_code

    def mail(self, delivery: Delivery) -> None:
        s = self.settings
        if not s.smtp_host:
            raise Failed("e-mail is not configured on this server (FASTLANE_SMTP_HOST)", retry=False)
        message = mail_message(delivery, s.smtp_from)
        try:
            if s.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
            with smtp:
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise Failed(f"SMTP: {exc}") from exc

    def close(self) -> None:
        self.http.close()


def mail_message(delivery: Delivery, sender: str) -> EmailMessage:
    """Plain text and HTML: what ran, how it ended, and where its logs are."""
    task, job, execution = (delivery.payload[k] for k in ("task", "job", "execution"))
    status = execution["status"]
    rows = [
        ("Task", task["id"]),
        ("Job", job["id"]),
        ("Execution", execution["id"]),
        ("Status", status),
        ("Exit code", "" if execution["exitCode"] is None else str(execution["exitCode"])),
        ("Error", execution["error"] or ""),
        ("Image", job["image"]),
        ("Command", job["command"]),
        ("Started", execution["startedAt"] or ""),
        ("Finished", execution["finishedAt"] or ""),
        ("Host", execution["host"] or ""),
    ]
    message = EmailMessage()
    message["Subject"] = f"[fastlane] {task['id']}: execution {status}"
    message["From"] = sender
    message["To"] = ", ".join(delivery.recipients)
    message["X-Fastlane-Delivery"] = str(delivery.delivery_id)
    text = "\n".join(f"{name}: {value}" for name, value in rows if value)
    message.set_content(f"{text}\n\nLogs: {execution['logsUrl']}\nExecution: {execution['url']}\n")
    cells = "".join(f"<tr><th>{escape(n)}</th><td>{escape(v)}</td></tr>" for n, v in rows if v)
    message.add_alternative(
        f"<html><body><table>{cells}</table>"
        f'<p><a href="{escape(execution["logsUrl"])}">Logs</a> · '
        f'<a href="{escape(execution["url"])}">Execution</a></p></body></html>',
        subtype="html",
    )
    return message
