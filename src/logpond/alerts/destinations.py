"""Where alert notifications go (logs spec §5.6): Slack, a signed JSON webhook, or Microsoft Teams.

Three jobs, no database: ``parse_destination`` checks a destination-create body and returns the config to
store; ``webhook_payload`` / ``slack_message`` / ``teams_message`` build what each destination receives;
``Deliverer`` posts it over HTTP with bounded retries.

logpond has no Slack app, so a Slack destination is an incoming-webhook URL or a bot token plus a channel.
Webhook bodies are signed: ``X-Logpond-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
``f"{t}."`` followed by the exact body bytes, keyed with the destination's signing secret (its UTF-8 bytes,
prefix included); receivers check it with ``verify_signature``.

Errors raised while delivering name the destination kind and host, never a path, query or token, since
incoming-webhook URLs are credentials themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from logpond import __version__

KINDS = ("firing", "resolved", "broken", "errored")
DESTINATION_TYPES = ("slack", "webhook", "teams")

WEBHOOK_EVENT_TYPES = {
    "firing": "logs_alert.firing",
    "resolved": "logs_alert.resolved",
    "broken": "logs_alert.auto_disabled",
    "errored": "logs_alert.errored",
}
# config fields kept encrypted at rest (logpond.meta.secretbox): credentials, and URLs that often are
SECRET_FIELDS = ("signing_secret", "slack_bot_token", "slack_webhook_url", "webhook_url")
SIGNATURE_HEADER = "X-Logpond-Signature"
EVENT_ID_HEADER = "X-Logpond-Event-Id"
USER_AGENT = f"logpond/{__version__}"

MAX_URL_LENGTH = 2000
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
MAX_RETRY_AFTER_SECONDS = 10.0
_RESPONSE_READ_LIMIT = 64 * 1024  # bytes of a destination's answer we read at most

_FIELDS_BY_TYPE = {
    "slack": frozenset(
        {"slack_webhook_url", "slack_bot_token", "slack_channel_id", "slack_channel_name", "slack_workspace_id"}
    ),
    "webhook": frozenset({"webhook_url", "webhook_secret"}),
    "teams": frozenset({"webhook_url"}),
}
_ALL_FIELDS = frozenset({"type"}).union(*_FIELDS_BY_TYPE.values())
_SLACK_TOKEN = re.compile(r"xox[bp]-[A-Za-z0-9-]{8,250}")
_SLACK_CHANNEL_ID = re.compile(r"[A-Z0-9]{2,32}")
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")
_SLACK_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_NO_SLACK_APP = (
    "logpond has no Slack integrations, so slack_workspace_id cannot be used; give slack_webhook_url "
    "(a Slack incoming webhook URL) or slack_bot_token (xoxb-...) with slack_channel_id instead."
)


class DestinationError(ValueError):
    """A destination-create body that cannot be stored; ``attr`` names the field at fault (None: the body)."""

    def __init__(self, detail: str, attr: str | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


class DeliveryError(Exception):
    """A notification that did not arrive; ``str()`` is a short message without secrets."""


@dataclass(frozen=True)
class DeliverySettings:
    allow_http_loopback: bool = False  # also accept http:// to 127.0.0.1, localhost and [::1] (tests, local relays)
    timeout_seconds: float = 10.0  # per HTTP attempt
    attempts: int = 3  # network errors, 5xx and 429 are retried up to this many attempts in all
    backoff_seconds: float = 0.5  # sleep backoff * 2**(attempt-1) between attempts
    slack_api_url: str = "https://slack.com/api"  # base of chat.postMessage for bot tokens


@dataclass(frozen=True)
class AlertNotice:
    """One notification about one alert, as every destination type renders it."""

    kind: str  # firing | resolved | broken | errored
    event_id: str  # uuid string; the webhook body's "id"
    triggered_at: dt.datetime  # aware
    alert_id: str
    alert_name: str
    team_id: int
    threshold_count: int
    threshold_operator: str  # above | below
    window_minutes: int
    result_count: int | None
    service_names: tuple[str, ...]
    severity_levels: tuple[str, ...]
    consecutive_failures: int = 0
    error_message: str | None = None
    logs_url: str = ""
    alert_url: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notification kind {self.kind!r}")
        if self.triggered_at.tzinfo is None:
            raise ValueError("triggered_at must be timezone-aware")


# --- validating a destination ------------------------------------------------------------------------------


def parse_destination(body: Any, settings: DeliverySettings) -> tuple[str, dict[str, Any]]:
    """Validate a POST ``…/alerts/<id>/destinations/`` body; return (type, config to store).

    The config holds secrets (bot token, signing secret, webhook URLs): show it through ``public_config``.
    """
    if not isinstance(body, dict):
        raise DestinationError("The request body must be a JSON object.", None)
    unknown = sorted(str(k) for k in body if k not in _ALL_FIELDS)
    if unknown:
        raise DestinationError(f"Unknown field {unknown[0]!r}.", unknown[0])
    kind = body.get("type")
    if kind not in DESTINATION_TYPES:
        raise DestinationError(f"type must be one of {', '.join(DESTINATION_TYPES)}.", "type")
    for name in sorted(_ALL_FIELDS - _FIELDS_BY_TYPE[kind] - {"type"}):
        if _present(body.get(name)):
            raise DestinationError(f"{name} does not apply to {kind} destinations.", name)
    if kind == "slack":
        return kind, _parse_slack(body, settings)
    url = _required_url(body, "webhook_url", settings)
    if kind == "teams":
        return kind, {"webhook_url": url}
    secret = _optional_str(body, "webhook_secret")
    if secret is None:
        secret = "whsec_" + secrets.token_urlsafe(32)
    elif not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not secret.isprintable() or " " in secret:
        raise DestinationError(
            f"webhook_secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable characters without spaces.",
            "webhook_secret",
        )
    return kind, {"webhook_url": url, "signing_secret": secret}


def _parse_slack(body: Mapping[str, Any], settings: DeliverySettings) -> dict[str, Any]:
    token = _optional_str(body, "slack_bot_token")
    workspace = body.get("slack_workspace_id")
    if token is None:
        if _present(workspace):
            raise DestinationError(_NO_SLACK_APP, "slack_workspace_id")
        if _present(body.get("slack_webhook_url")):
            for name in ("slack_channel_id", "slack_channel_name"):
                if _present(body.get(name)):
                    raise DestinationError(
                        f"{name} only applies with slack_bot_token; an incoming webhook posts to its own channel.",
                        name,
                    )
            return {"slack_webhook_url": _required_url(body, "slack_webhook_url", settings)}
        if _present(body.get("slack_channel_id")):
            raise DestinationError(
                "slack_channel_id needs slack_bot_token (a bot token, xoxb-...) to post with.", "slack_bot_token"
            )
        raise DestinationError(
            "A slack destination needs slack_webhook_url (a Slack incoming webhook URL) "
            "or slack_bot_token (xoxb-...) with slack_channel_id.",
            "slack_webhook_url",
        )
    if _present(body.get("slack_webhook_url")):
        raise DestinationError("Give slack_webhook_url or slack_bot_token, not both.", "slack_webhook_url")
    if not _SLACK_TOKEN.fullmatch(token):
        raise DestinationError("slack_bot_token must be a Slack bot token (xoxb-...).", "slack_bot_token")
    channel = _optional_str(body, "slack_channel_id")
    if channel is None:
        raise DestinationError("slack_channel_id is required with slack_bot_token.", "slack_channel_id")
    if not _SLACK_CHANNEL_ID.fullmatch(channel):
        raise DestinationError(
            "slack_channel_id must be a Slack channel ID (capital letters and digits, e.g. C0123ABCD).",
            "slack_channel_id",
        )
    config: dict[str, Any] = {"slack_bot_token": token, "slack_channel_id": channel}
    channel_name = _optional_str(body, "slack_channel_name")
    if channel_name is not None:
        channel_name = channel_name.removeprefix("#")
        if not channel_name or len(channel_name) > 80 or not channel_name.isprintable():
            raise DestinationError("slack_channel_name must be 1 to 80 printable characters.", "slack_channel_name")
        config["slack_channel_name"] = channel_name
    if _present(workspace):
        if isinstance(workspace, bool) or not isinstance(workspace, int) or workspace < 1:
            raise DestinationError("slack_workspace_id must be a positive integer.", "slack_workspace_id")
        config["slack_workspace_id"] = workspace
    return config


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if not _present(value):
        return None
    if not isinstance(value, str):
        raise DestinationError(f"{name} must be a string.", name)
    return value


def _required_url(body: Mapping[str, Any], name: str, settings: DeliverySettings) -> str:
    url = _optional_str(body, name)
    if url is None:
        raise DestinationError(f"{name} is required.", name)
    problem = url_problem(url, allow_http_loopback=settings.allow_http_loopback)
    if problem is not None:
        raise DestinationError(f"{name} {problem}.", name)
    return url


def url_problem(url: str, *, allow_http_loopback: bool) -> str | None:
    """Why ``url`` may not receive notifications (a phrase), or None when it may.

    https:// with a public host name or address; plain http:// only to a loopback host when allowed.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() or ord(c) > 126 for c in url):
        return "must not contain spaces, control or non-ASCII characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "must be an https:// URL"
    if not parts.netloc:
        return "must name a host"
    if "@" in parts.netloc:
        return "must not contain a user name or password"
    host = (parts.hostname or "").lower()
    if not host or port == 0:
        return "must name a host"
    loopback = _is_loopback(host)
    if loopback is None:
        return "must name a valid host"
    if allow_http_loopback and loopback:
        return None
    if scheme != "https":
        return "must be an https:// URL"
    if loopback or _is_internal_address(host):
        return "must not point at a loopback or private address"
    return None


def _is_loopback(host: str) -> bool | None:
    """True for loopback hosts, False for other valid hosts, None for an invalid host."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    # a numeric last label is no DNS name but may still be read as an address (2130706433, 0x7f.1)
    if not _HOST_NAME.fullmatch(host) or len(host) > 253 or last_label.isdigit() or last_label.startswith("0x"):
        return None
    return False


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global or address.is_multicast


# --- showing a destination ---------------------------------------------------------------------------------


def public_config(destination_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The stored config with its secrets masked, for API responses and the CLI.

    Bot tokens and signing secrets keep their prefix and last four characters; Slack and Teams webhook URLs
    (credentials themselves) keep only scheme and host; a webhook URL keeps its path but not its query.
    """
    shown = dict(config)
    if isinstance(shown.get("slack_bot_token"), str):
        shown["slack_bot_token"] = _mask_secret(shown["slack_bot_token"])
    if isinstance(shown.get("signing_secret"), str):
        shown["signing_secret"] = _mask_secret(shown["signing_secret"])
    if isinstance(shown.get("slack_webhook_url"), str):
        shown["slack_webhook_url"] = _mask_url(shown["slack_webhook_url"], keep_path=False)
    if isinstance(shown.get("webhook_url"), str):
        shown["webhook_url"] = _mask_url(shown["webhook_url"], keep_path=destination_type == "webhook")
    return shown


def _mask_secret(value: str) -> str:
    prefix = m.group(0) if (m := re.match(r"(xox[a-z]-|whsec_)", value)) else ""
    tail = value[-4:] if len(value) - len(prefix) >= 16 else ""
    return f"{prefix}…{tail}"


def _mask_url(url: str, *, keep_path: bool) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    shown = f"{parts.scheme}://{parts.netloc}"
    if keep_path:
        shown += parts.path + ("?…" if parts.query else "")
    elif parts.path not in ("", "/") or parts.query:
        shown += "/…"
    return shown


# --- what each destination receives ------------------------------------------------------------------------


def webhook_payload(notice: AlertNotice) -> dict[str, Any]:
    """The JSON document a generic webhook receives (spec §5.6)."""
    data: dict[str, Any] = {"alert_id": notice.alert_id, "alert_name": notice.alert_name}
    if notice.kind in ("firing", "resolved"):
        data.update(
            result_count=notice.result_count,
            threshold_count=notice.threshold_count,
            threshold_operator=notice.threshold_operator,
            window_minutes=notice.window_minutes,
            service_names=list(notice.service_names),
            severity_levels=list(notice.severity_levels),
            logs_url=notice.logs_url or None,
            alert_url=notice.alert_url or None,
        )
    else:
        data.update(
            consecutive_failures=notice.consecutive_failures,
            service_names=list(notice.service_names),
            severity_levels=list(notice.severity_levels),
            alert_url=notice.alert_url or None,
        )
        key = "last_error_message" if notice.kind == "broken" else "error_message"
        data[key] = notice.error_message
    return {
        "id": notice.event_id,
        "type": WEBHOOK_EVENT_TYPES[notice.kind],
        "timestamp": _iso_utc(notice.triggered_at),
        "data": data,
    }


def _iso_utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _title(notice: AlertNotice) -> str:
    name = notice.alert_name or "Untitled alert"
    return {
        "firing": f"🔴 Log alert firing: {name}",
        "resolved": f"✅ Log alert resolved: {name}",
        "broken": f"⛔ Log alert disabled after repeated errors: {name}",
        "errored": f"⚠️ Couldn't evaluate log alert: {name}",
    }[notice.kind]


def _count_line(notice: AlertNotice, *, bold: str = "") -> str:
    """'N logs in Wm (threshold: above T)'; ``bold`` wraps N (Slack's ``*``)."""
    if notice.result_count is None:
        counted = "No count"
    else:
        counted = f"{bold}{notice.result_count:,}{bold} log{'' if notice.result_count == 1 else 's'}"
    return f"{counted} in {notice.window_minutes}m (threshold: {notice.threshold_operator} {notice.threshold_count:,})"


def _problem_line(notice: AlertNotice) -> str:
    error = notice.error_message or "unknown error"
    if notice.kind == "broken":
        failures = notice.consecutive_failures
        return (
            f"The check failed {failures} time{'' if failures == 1 else 's'} in a row, so the alert stopped "
            f"until it is reset. Last error: {error}"
        )
    return f"The alert's check failed: {error}"


def _summary(notice: AlertNotice) -> str:
    return _count_line(notice) if notice.kind in ("firing", "resolved") else _problem_line(notice)


def _link(notice: AlertNotice) -> tuple[str, str] | None:
    """(button label, URL) for the notice's main link, if any."""
    if notice.kind in ("firing", "resolved") and notice.logs_url:
        return "View logs", notice.logs_url
    if notice.alert_url:
        return "Open alert", notice.alert_url
    return None


def _scope(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "all"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(notice: AlertNotice) -> dict[str, Any]:
    """A Slack Block Kit message: header, summary, link button, severity/service context."""
    title = _title(notice)
    summary = _summary(notice)
    if notice.kind in ("firing", "resolved"):
        section = _count_line(notice, bold="*")
    else:
        section = _slack_escape(_problem_line(notice))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(section, 3000)}},
    ]
    link = _link(notice)
    if link is not None:
        label, url = link
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _clip(f"*Severity:* {_slack_escape(_scope(notice.severity_levels))}", 2000)},
                {"type": "mrkdwn", "text": _clip(f"*Services:* {_slack_escape(_scope(notice.service_names))}", 2000)},
            ],
        }
    )
    return {"text": _clip(_slack_escape(f"{title} — {summary}"), 3000), "blocks": blocks}


_TEAMS_COLOURS = {"firing": "attention", "resolved": "good", "broken": "attention", "errored": "warning"}


def teams_message(notice: AlertNotice) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card (accepted by Teams workflow and connector webhooks)."""
    facts = [{"title": "Alert", "value": notice.alert_name or "Untitled alert"}]
    if notice.kind in ("firing", "resolved"):
        facts.append({"title": "Count", "value": _count_line(notice)})
    else:
        facts.append({"title": "Consecutive failures", "value": str(notice.consecutive_failures)})
    facts += [
        {"title": "Severity", "value": _scope(notice.severity_levels)},
        {"title": "Services", "value": _scope(notice.service_names)},
        {"title": "Triggered at", "value": _iso_utc(notice.triggered_at)},
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": _title(notice),
                "size": "Medium",
                "weight": "Bolder",
                "color": _TEAMS_COLOURS[notice.kind],
                "wrap": True,
            },
            {"type": "TextBlock", "text": _summary(notice), "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    link = _link(notice)
    if link is not None:
        card["actions"] = [{"type": "Action.OpenUrl", "title": link[0], "url": link[1]}]
    return {
        "type": "message",
        "summary": _title(notice),
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# --- signatures --------------------------------------------------------------------------------------------


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``X-Logpond-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = 300) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret`` within ``tolerance`` seconds of ``now``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body).encode()
    # compare every candidate so the time taken does not depend on which one matched
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return matched


# --- delivery ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Post:
    label: str  # how messages name the destination: "webhook", "slack", ...
    url: str
    body: bytes
    headers: Mapping[str, str]
    signing_secret: str | None = None  # sign each attempt afresh
    slack_api: bool = False  # Slack Web API: 200 with {"ok": false} is a failure


class _Retry(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay  # seconds the destination asked us to wait, if it did


class Deliverer:
    """Sends notices to destinations over one HTTP client; retries network errors, 5xx and 429 a bounded
    number of times with exponential backoff."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._owns_client = client is None
        self._client = client or httpx.Client(follow_redirects=False, timeout=httpx.Timeout(settings.timeout_seconds))
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def deliver(self, destination_type: str, config: Mapping[str, Any], notice: AlertNotice) -> None:
        """Send ``notice`` to one destination; DeliveryError when it did not take it."""
        self._send(self._prepare(destination_type, config, notice))

    def _prepare(self, destination_type: str, config: Mapping[str, Any], notice: AlertNotice) -> _Post:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if destination_type == "webhook":
            body = orjson.dumps(webhook_payload(notice))
            return _Post(
                "webhook",
                self._url(config, "webhook_url", "webhook"),
                body,
                {**headers, EVENT_ID_HEADER: notice.event_id},
                signing_secret=_config_str(config, "signing_secret"),
            )
        if destination_type == "teams":
            return _Post(
                "teams webhook",
                self._url(config, "webhook_url", "teams webhook"),
                orjson.dumps(teams_message(notice)),
                headers,
            )
        if destination_type == "slack":
            message = slack_message(notice)
            if config.get("slack_webhook_url"):
                url = self._url(config, "slack_webhook_url", "slack webhook")
                return _Post("slack webhook", url, orjson.dumps(message), headers)
            token = _config_str(config, "slack_bot_token")
            body = orjson.dumps({**message, "channel": _config_str(config, "slack_channel_id")})
            url = self._settings.slack_api_url.rstrip("/") + "/chat.postMessage"
            auth = {**headers, "Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
            return _Post("slack", url, body, auth, slack_api=True)
        raise DeliveryError(f"unknown destination type {destination_type!r}")

    def _url(self, config: Mapping[str, Any], key: str, label: str) -> str:
        url = _config_str(config, key)
        problem = url_problem(url, allow_http_loopback=self._settings.allow_http_loopback)
        if problem is not None:
            raise DeliveryError(f"{label} URL refused: it {problem}")
        return url

    def _check_resolved(self, post: _Post, host: str) -> None:
        """Refuse a host name that resolves to a loopback, private or link-local address, so a destination
        cannot reach inside the server's network through DNS. (A name that resolves differently between
        this look-up and the connection is not caught.)"""
        try:
            ipaddress.ip_address(host)
            return  # an address: url_problem has judged it already
        except ValueError:
            pass
        port = urlsplit(post.url).port or 443
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise _Retry(f"could not resolve {post.label} host {host}") from None
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if self._settings.allow_http_loopback and address.is_loopback:
                continue
            if not address.is_global or address.is_multicast:
                raise DeliveryError(f"{post.label} host {host} resolves to a loopback or private address")

    def _send(self, post: _Post) -> None:
        attempts = max(1, self._settings.attempts)
        message = ""
        for attempt in range(1, attempts + 1):
            try:
                self._attempt(post)
                return
            except _Retry as retry:
                message = str(retry)
                delay = self._settings.backoff_seconds * 2 ** (attempt - 1)
                if retry.delay is not None:
                    delay = retry.delay
            if attempt < attempts:
                self._sleep(delay)
        raise DeliveryError(f"{message} after {attempts} attempts" if attempts > 1 else message)

    def _attempt(self, post: _Post) -> None:
        """One POST; returns on success, raises _Retry for a retryable failure, DeliveryError otherwise."""
        headers = dict(post.headers)
        if post.signing_secret is not None:
            headers[SIGNATURE_HEADER] = signature_header(post.signing_secret, post.body, timestamp=int(time.time()))
        host = urlsplit(post.url).hostname or "?"
        timeout = self._settings.timeout_seconds
        if not post.slack_api:  # Slack's API base is a setting, not a user's URL
            self._check_resolved(post, host)
        try:
            with self._client.stream(
                "POST", post.url, content=post.body, headers=headers, timeout=timeout, follow_redirects=False
            ) as response:
                answer = _read_capped(response)
        except httpx.TimeoutException:
            raise _Retry(f"{post.label} timed out ({timeout:g} s)") from None
        except httpx.ConnectError:
            raise _Retry(f"could not connect to {post.label} host {host}") from None
        except httpx.TransportError:
            raise _Retry(f"connection to {post.label} host {host} failed") from None
        status = response.status_code
        detail = _answer_detail(answer)
        if status == 429:
            raise _Retry(f"{post.label} answered 429{detail}", _retry_after(response))
        if status >= 500:
            raise _Retry(f"{post.label} answered {status}{detail}")
        if 300 <= status < 400:
            raise DeliveryError(f"{post.label} answered {status} (redirects are not followed)")
        if not 200 <= status < 300:
            raise DeliveryError(f"{post.label} answered {status}{detail}")
        if post.slack_api:
            _check_slack_api_answer(answer, response)


def _config_str(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"destination config has no {key}")
    return value


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _RESPONSE_READ_LIMIT:
            break
    return b"".join(chunks)[:_RESPONSE_READ_LIMIT]


def _answer_detail(answer: bytes) -> str:
    """A Slack-style error code from a short plain answer (' (no_service)'), else nothing: bodies can echo
    anything, so only a bare code is repeated."""
    text = answer.strip().decode("ascii", "replace")
    return f" ({text})" if _SLACK_ERROR_CODE.fullmatch(text) and text != "ok" else ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _check_slack_api_answer(answer: bytes, response: httpx.Response) -> None:
    try:
        doc = orjson.loads(answer)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise DeliveryError("slack answered with something other than a JSON object")
    if doc.get("ok") is True:
        return
    error = doc.get("error")
    code = error if isinstance(error, str) and _SLACK_ERROR_CODE.fullmatch(error) else "unknown_error"
    if code == "ratelimited":
        raise _Retry("slack answered ratelimited", _retry_after(response))
    raise DeliveryError(f"slack answered {code}")
