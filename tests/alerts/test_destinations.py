"""Alert destinations: validating a create body, what each destination receives, and delivery over real HTTP."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest

import logpond
from logpond.alerts.destinations import (
    KINDS,
    AlertNotice,
    Deliverer,
    DeliveryError,
    DeliverySettings,
    DestinationError,
    parse_destination,
    public_config,
    signature_header,
    slack_message,
    teams_message,
    verify_signature,
    webhook_payload,
)
from tests.alerts._receiver import Receiver

STRICT = DeliverySettings()
LOOPBACK = DeliverySettings(allow_http_loopback=True)
HOOK = "https://hooks.example.com/logpond"
TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
SECRET = "whsec_0123456789abcdefghij"

NOTICE = AlertNotice(
    kind="firing",
    event_id="6a1f6f4e-8c1b-4a55-9d6e-0b8f1f0c2d3e",
    triggered_at=dt.datetime(2026, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    alert_id="0d4b0c2e-3f4a-4b5c-8d6e-7f8091a2b3c4",
    alert_name="API errors",
    team_id=1,
    threshold_count=100,
    threshold_operator="above",
    window_minutes=5,
    result_count=123,
    service_names=("api", "web"),
    severity_levels=("error",),
    logs_url="https://logs.example.com/project/1/logs?x=1",
    alert_url="https://logs.example.com/project/1/logs/alerts/0d4b",
)
ERRORED = replace(NOTICE, kind="errored", result_count=None, consecutive_failures=1, error_message="Timeout <30 s>")
BROKEN = replace(ERRORED, kind="broken", consecutive_failures=5, error_message="Unknown column 'x'")


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@contextmanager
def deliverer(rx: Receiver, **settings: Any) -> Iterator[tuple[Deliverer, list[float]]]:
    """A Deliverer allowed to reach the receiver, recording the pauses it would sleep instead of sleeping."""
    sleeps: list[float] = []
    fields: dict[str, Any] = {"allow_http_loopback": True, "timeout_seconds": 2.0, "slack_api_url": rx.slack_api_url}
    d = Deliverer(DeliverySettings(**(fields | settings)), sleep=sleeps.append)
    try:
        yield d, sleeps
    finally:
        d.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- validating a create body ------------------------------------------------------------------------------

BOT: dict[str, Any] = {"type": "slack", "slack_bot_token": TOKEN, "slack_channel_id": "C01"}
BAD_BODIES: list[tuple[Any, str | None, str]] = [
    ([{"type": "webhook"}], None, "JSON object"),
    ({}, "type", "type must be one of"),
    ({"type": "discord", "webhook_url": HOOK}, "type", "slack, webhook, teams"),
    ({"type": "webhook", "webhook_url": HOOK, "colour": "red"}, "colour", "Unknown field"),
    ({"type": "webhook"}, "webhook_url", "required"),
    ({"type": "webhook", "webhook_url": ""}, "webhook_url", "required"),
    ({"type": "webhook", "webhook_url": 42}, "webhook_url", "must be a string"),
    ({"type": "teams"}, "webhook_url", "required"),
    ({"type": "webhook", "webhook_url": HOOK, "webhook_secret": "short"}, "webhook_secret", "16"),
    ({"type": "webhook", "webhook_url": HOOK, "webhook_secret": "a secret with spaces!"}, "webhook_secret", "spaces"),
    ({"type": "teams", "webhook_url": HOOK, "webhook_secret": SECRET}, "webhook_secret", "does not apply to teams"),
    ({"type": "webhook", "webhook_url": HOOK, "slack_channel_id": "C01"}, "slack_channel_id", "does not apply"),
    ({"type": "slack"}, "slack_webhook_url", "slack_bot_token"),
    ({"type": "slack", "slack_workspace_id": 7, "slack_channel_id": "C0123"}, "slack_workspace_id", "no Slack integ"),
    ({"type": "slack", "slack_workspace_id": 7, "slack_webhook_url": HOOK}, "slack_workspace_id", "slack_webhook_url"),
    ({"type": "slack", "slack_channel_id": "C0123ABCD"}, "slack_bot_token", "needs slack_bot_token"),
    ({"type": "slack", "slack_bot_token": TOKEN}, "slack_channel_id", "required"),
    ({"type": "slack", "slack_bot_token": "hunter2", "slack_channel_id": "C01"}, "slack_bot_token", "xoxb-"),
    ({"type": "slack", "slack_bot_token": TOKEN, "slack_channel_id": "#alerts"}, "slack_channel_id", "channel ID"),
    ({**BOT, "slack_channel_name": "x" * 81}, "slack_channel_name", "80"),
    ({**BOT, "slack_workspace_id": "T01"}, "slack_workspace_id", "integer"),
    ({"type": "slack", "slack_bot_token": TOKEN, "slack_webhook_url": HOOK}, "slack_webhook_url", "not both"),
    ({"type": "slack", "slack_webhook_url": HOOK, "slack_channel_id": "C01"}, "slack_channel_id", "slack_bot_token"),
    ({"type": "slack", "webhook_url": HOOK}, "webhook_url", "does not apply to slack"),
    ({"type": "slack", "slack_webhook_url": "http://hooks.slack.com/services/x"}, "slack_webhook_url", "https://"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "attr", "words"), BAD_BODIES)
def test_bad_create_bodies_name_the_field(body: Any, attr: str | None, words: str) -> None:
    """Each bad create body raises a DestinationError whose attr names the field at fault."""
    with pytest.raises(DestinationError) as caught:
        parse_destination(body, STRICT)
    assert caught.value.attr == attr
    assert words in caught.value.detail


BAD_URLS = [
    ("http://hooks.example.com/x", "https://"),
    ("ftp://hooks.example.com/x", "https://"),
    ("hooks.example.com/x", "https://"),
    ("https:///x", "host"),
    ("https://user:pw@hooks.example.com/x", "user name or password"),
    ("https://hooks.example.com/a b", "spaces"),
    (" https://hooks.example.com/x", "spaces"),
    ("https://hooks.example.com/\x00", "spaces"),
    ("https://hooks.example.com/" + "a" * 2000, "2000"),
    ("https://hooks.example.com:99999/x", "valid URL"),
    ("https://hooks_example!.com/x", "valid host"),
    ("https://2130706433/x", "valid host"),
    ("https://0x7f.0.0.1/x", "valid host"),
    ("https://[::ffff:127.0.0.1]/x", "loopback or private"),
    ("https://127.0.0.1/x", "loopback or private"),
    ("https://localhost/x", "loopback or private"),
    ("https://10.1.2.3/x", "loopback or private"),
    ("https://169.254.169.254/latest/meta-data", "loopback or private"),
    ("https://[::1]/x", "loopback or private"),
    ("http://127.0.0.1:8080/x", "https://"),
]


@pytest.mark.parametrize(("url", "words"), BAD_URLS)
def test_webhook_urls_must_be_public_https(url: str, words: str) -> None:
    """Without the loopback setting a URL must be https:// to a public host, with no credentials or spaces."""
    with pytest.raises(DestinationError) as caught:
        parse_destination({"type": "webhook", "webhook_url": url}, STRICT)
    assert caught.value.attr == "webhook_url"
    assert words in caught.value.detail


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost:9/hook", "http://[::1]:8080/hook", "https://127.0.0.1/x"]
)
def test_loopback_http_is_accepted_only_with_the_setting(url: str) -> None:
    """http:// to 127.0.0.1, localhost or [::1] is refused by default and accepted with allow_http_loopback."""
    with pytest.raises(DestinationError):
        parse_destination({"type": "teams", "webhook_url": url}, STRICT)
    assert parse_destination({"type": "teams", "webhook_url": url}, LOOPBACK) == ("teams", {"webhook_url": url})


def test_loopback_setting_does_not_open_plain_http_elsewhere() -> None:
    """allow_http_loopback still refuses http:// to any other host."""
    for url in ("http://hooks.example.com/x", "http://10.0.0.1/x", "http://127.0.0.1.example.com/x"):
        with pytest.raises(DestinationError, match="https://"):
            parse_destination({"type": "webhook", "webhook_url": url}, LOOPBACK)


def test_webhook_gets_a_generated_signing_secret_unless_given_one() -> None:
    """A webhook without webhook_secret gets a fresh whsec_ secret; a given one is stored as signing_secret."""
    kind, first = parse_destination({"type": "webhook", "webhook_url": HOOK}, STRICT)
    _, second = parse_destination({"type": "webhook", "webhook_url": HOOK}, STRICT)
    assert kind == "webhook" and first["webhook_url"] == HOOK
    assert first["signing_secret"].startswith("whsec_") and len(first["signing_secret"]) >= 40
    assert first["signing_secret"] != second["signing_secret"]
    given = parse_destination({"type": "webhook", "webhook_url": HOOK, "webhook_secret": "s" * 16}, STRICT)
    assert given == ("webhook", {"webhook_url": HOOK, "signing_secret": "s" * 16})


def test_slack_destinations_are_a_webhook_url_or_a_bot_token_and_channel() -> None:
    """Slack takes an incoming webhook URL, or a bot token with a channel ID (optional name and workspace)."""
    hook = "https://hooks.slack.com/services/T000/B000/XXXX"
    assert parse_destination({"type": "slack", "slack_webhook_url": hook}, STRICT) == (
        "slack",
        {"slack_webhook_url": hook},
    )
    body = {
        "type": "slack",
        "slack_bot_token": TOKEN,
        "slack_channel_id": "C0123ABCD",
        "slack_channel_name": "#alerts",
        "slack_workspace_id": 7,
    }
    assert parse_destination(body, STRICT) == (
        "slack",
        {
            "slack_bot_token": TOKEN,
            "slack_channel_id": "C0123ABCD",
            "slack_channel_name": "alerts",
            "slack_workspace_id": 7,
        },
    )


def test_null_fields_of_other_types_are_ignored() -> None:
    """A client that sends every field, the unused ones null or empty, is accepted."""
    body = {
        "type": "teams",
        "webhook_url": HOOK,
        "slack_workspace_id": None,
        "slack_channel_id": "",
        "webhook_secret": None,
    }
    assert parse_destination(body, STRICT) == ("teams", {"webhook_url": HOOK})


def test_public_config_masks_secrets() -> None:
    """Bot tokens, signing secrets and credential-bearing URLs are masked; the stored config is untouched."""
    bot = {"slack_bot_token": TOKEN, "slack_channel_id": "C0123ABCD"}
    shown = public_config("slack", bot)
    assert shown == {"slack_bot_token": "xoxb-…UvWx", "slack_channel_id": "C0123ABCD"}
    assert bot["slack_bot_token"] == TOKEN
    hook = public_config("slack", {"slack_webhook_url": "https://hooks.slack.com/services/T000/B000/SECRETPART"})
    assert hook == {"slack_webhook_url": "https://hooks.slack.com/…"}
    signed = public_config("webhook", {"webhook_url": "https://h.example.com/in?token=abc", "signing_secret": SECRET})
    assert signed == {"webhook_url": "https://h.example.com/in?…", "signing_secret": "whsec_…ghij"}
    teams = public_config("teams", {"webhook_url": "https://x.webhook.office.com/webhookb2/abc@def/IncomingWebhook/1"})
    assert teams == {"webhook_url": "https://x.webhook.office.com/…"}
    assert "0123456789" not in orjson.dumps([shown, hook, signed, teams]).decode()


# --- what each destination receives ------------------------------------------------------------------------


def test_notice_rejects_unknown_kinds_and_naive_times() -> None:
    """An AlertNotice needs one of the four kinds and an aware triggered_at."""
    with pytest.raises(ValueError, match="kind"):
        replace(NOTICE, kind="fire")
    with pytest.raises(ValueError, match="aware"):
        replace(NOTICE, triggered_at=dt.datetime(2026, 6, 1, 12, 0))


def test_webhook_payload_for_firing_and_resolved() -> None:
    """firing and resolved bodies carry the count, the threshold and links, stamped in UTC with Z."""
    assert webhook_payload(NOTICE) == {
        "id": NOTICE.event_id,
        "type": "logs_alert.firing",
        "timestamp": "2026-06-01T12:00:00Z",
        "data": {
            "alert_id": NOTICE.alert_id,
            "alert_name": "API errors",
            "result_count": 123,
            "threshold_count": 100,
            "threshold_operator": "above",
            "window_minutes": 5,
            "service_names": ["api", "web"],
            "severity_levels": ["error"],
            "logs_url": NOTICE.logs_url,
            "alert_url": NOTICE.alert_url,
        },
    }
    resolved = webhook_payload(replace(NOTICE, kind="resolved", result_count=3))
    assert resolved["type"] == "logs_alert.resolved" and resolved["data"]["result_count"] == 3


def test_webhook_payload_for_broken_and_errored() -> None:
    """broken is sent as auto_disabled with last_error_message; errored carries error_message."""
    broken = webhook_payload(BROKEN)
    assert broken["type"] == "logs_alert.auto_disabled"
    assert broken["data"] == {
        "alert_id": NOTICE.alert_id,
        "alert_name": "API errors",
        "consecutive_failures": 5,
        "service_names": ["api", "web"],
        "severity_levels": ["error"],
        "alert_url": NOTICE.alert_url,
        "last_error_message": "Unknown column 'x'",
    }
    errored = webhook_payload(ERRORED)
    assert errored["type"] == "logs_alert.errored"
    assert errored["data"]["error_message"] == "Timeout <30 s>" and "last_error_message" not in errored["data"]
    assert {webhook_payload(replace(NOTICE, kind=k))["type"].split(".")[1] for k in KINDS} == {
        "firing",
        "resolved",
        "auto_disabled",
        "errored",
    }


def test_slack_message_for_a_firing_alert() -> None:
    """Header, count line, a button to the logs and a severity/service context, plus fallback text."""
    message = slack_message(NOTICE)
    header, section, actions, context = message["blocks"]
    assert header["type"] == "header" and header["text"]["text"] == "🔴 Log alert firing: API errors"
    assert section["text"]["text"] == "*123* logs in 5m (threshold: above 100)"
    assert actions["elements"][0]["url"] == NOTICE.logs_url and actions["elements"][0]["type"] == "button"
    assert [e["text"] for e in context["elements"]] == ["*Severity:* error", "*Services:* api, web"]
    assert message["text"] == "🔴 Log alert firing: API errors — 123 logs in 5m (threshold: above 100)"


def test_slack_message_headers_per_kind_and_errors_escaped() -> None:
    """Each kind has its own header; errors are escaped for mrkdwn and link to the alert."""
    headers = {k: slack_message(replace(ERRORED, kind=k))["blocks"][0]["text"]["text"] for k in KINDS}
    assert headers["resolved"].startswith("✅ Log alert resolved")
    assert headers["broken"].startswith("⛔ Log alert disabled")
    assert headers["errored"].startswith("⚠️ Couldn't evaluate log alert")
    errored = slack_message(ERRORED)["blocks"]
    assert "Timeout &lt;30 s&gt;" in errored[1]["text"]["text"]
    assert errored[2]["elements"][0]["url"] == NOTICE.alert_url
    assert "5 times in a row" in slack_message(BROKEN)["blocks"][1]["text"]["text"]
    bare = slack_message(replace(NOTICE, logs_url="", alert_url="", service_names=()))["blocks"]
    assert [b["type"] for b in bare] == ["header", "section", "context"]
    assert bare[-1]["elements"][1]["text"] == "*Services:* all"


def test_teams_message_is_an_adaptive_card() -> None:
    """Teams gets a message with one Adaptive Card: title, summary, facts and a link to the logs."""
    message = teams_message(NOTICE)
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    title, summary, facts = card["body"]
    assert title["text"] == "🔴 Log alert firing: API errors" and title["color"] == "attention"
    assert summary["text"] == "123 logs in 5m (threshold: above 100)"
    assert {"title": "Services", "value": "api, web"} in facts["facts"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "View logs", "url": NOTICE.logs_url}]
    broken = teams_message(BROKEN)["attachments"][0]["content"]
    assert "Unknown column 'x'" in broken["body"][1]["text"]
    assert broken["actions"][0]["url"] == NOTICE.alert_url


# --- signatures --------------------------------------------------------------------------------------------


def test_signature_verifies_only_the_same_secret_body_and_recent_time() -> None:
    """A signature checks out with its secret and body within the tolerance, and fails otherwise."""
    body = orjson.dumps(webhook_payload(NOTICE))
    header = signature_header(SECRET, body, timestamp=1_780_000_000)
    assert verify_signature(SECRET, header, body, now=1_780_000_010)
    assert not verify_signature(SECRET + "x", header, body, now=1_780_000_010)
    assert not verify_signature(SECRET, header, body.replace(b"123", b"124"), now=1_780_000_010)
    assert not verify_signature(SECRET, header, body, now=1_780_000_301)
    assert not verify_signature(SECRET, header, body, now=1_779_999_000)
    assert verify_signature(SECRET, header, body, now=1_780_000_301, tolerance=400)


def test_malformed_signature_headers_do_not_verify() -> None:
    """Missing parts or junk never verify; one matching v1 among several does (secret rotation)."""
    body = b"{}"
    good = signature_header(SECRET, body, timestamp=1000)
    digest = good.split("v1=")[1]
    for header in ("", "t=1000", f"v1={digest}", f"t=abc,v1={digest}", "garbage", f"t=1000,v1=é{digest}"):
        assert not verify_signature(SECRET, header, body, now=1000)
    assert verify_signature(SECRET, f"t=1000,v1={'0' * 64},v1={digest}", body, now=1000)


# --- delivery over HTTP ------------------------------------------------------------------------------------


def test_webhook_delivery_is_signed_json(rx: Receiver) -> None:
    """The receiver gets the payload as JSON with event id, user agent and a signature over the exact bytes."""
    with deliverer(rx) as (d, sleeps):
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    [request] = rx.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.json == webhook_payload(NOTICE)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-logpond-event-id"] == NOTICE.event_id
    assert request.headers["user-agent"] == f"logpond/{logpond.__version__}"
    assert verify_signature(SECRET, request.headers["x-logpond-signature"], request.body)
    assert not verify_signature("whsec_another_secret_entirely", request.headers["x-logpond-signature"], request.body)
    assert sleeps == []


def test_server_errors_are_retried_with_backoff(rx: Receiver) -> None:
    """Two 500s then a 200: delivered on the third attempt after sleeping 0.5 s and 1 s, each attempt signed."""
    rx.respond_with(500, "boom", times=2)
    with deliverer(rx) as (d, sleeps):
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    requests = rx.wait_for(3)
    assert len(requests) == 3 and sleeps == [0.5, 1.0]
    assert all(verify_signature(SECRET, r.headers["x-logpond-signature"], r.body) for r in requests)
    assert len({r.body for r in requests}) == 1


def test_attempts_are_bounded(rx: Receiver) -> None:
    """A destination that keeps failing gets exactly `attempts` tries, then DeliveryError."""
    rx.respond_with(503, times=10)
    with deliverer(rx, attempts=4) as (d, sleeps), pytest.raises(DeliveryError) as caught:
        d.deliver("teams", {"webhook_url": f"{rx.url}/teams"}, NOTICE)
    assert str(caught.value) == "teams webhook answered 503 after 4 attempts"
    assert len(rx.requests) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_client_errors_are_not_retried(rx: Receiver) -> None:
    """A 400 fails at once: one request, no sleep."""
    rx.respond_with(400, "bad request", times=5)
    with deliverer(rx) as (d, sleeps), pytest.raises(DeliveryError) as caught:
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    assert str(caught.value) == "webhook answered 400"
    assert len(rx.requests) == 1 and sleeps == []


def test_redirects_are_not_followed(rx: Receiver) -> None:
    """A 302 is a failure: the Location is not visited."""
    rx.respond_with(302, headers={"Location": f"{rx.url}/elsewhere"})
    with deliverer(rx) as (d, _), pytest.raises(DeliveryError, match="302"):
        d.deliver("teams", {"webhook_url": f"{rx.url}/teams"}, NOTICE)
    assert [r.path for r in rx.requests] == ["/teams"]


def test_rate_limits_honour_retry_after_up_to_ten_seconds(rx: Receiver) -> None:
    """429 with Retry-After waits that long (capped at 10 s) before the next attempt."""
    rx.respond_with(429, headers={"Retry-After": "2"})
    rx.respond_with(429, headers={"Retry-After": "3600"})
    with deliverer(rx) as (d, sleeps):
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    assert len(rx.requests) == 3 and sleeps == [2.0, 10.0]


def test_a_slow_destination_times_out(rx: Receiver) -> None:
    """An answer slower than the timeout counts as a failed attempt, and the next attempt can succeed."""
    rx.respond_with(200, delay=2.0)
    with deliverer(rx, timeout_seconds=0.2, attempts=1) as (d, _), pytest.raises(DeliveryError) as caught:
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    assert str(caught.value) == "webhook timed out (0.2 s)"
    rx.respond_with(200, delay=2.0)
    with deliverer(rx, timeout_seconds=0.2, attempts=2) as (d, sleeps):
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    assert len(rx.requests) == 3 and sleeps == [0.5]


def test_an_unreachable_host_names_only_the_host(rx: Receiver) -> None:
    """Connection refused is retried, then reported with the host and without the URL's path."""
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/SECRETPART"
    with deliverer(rx) as (d, sleeps), pytest.raises(DeliveryError) as caught:
        d.deliver("slack", {"slack_webhook_url": url}, NOTICE)
    assert str(caught.value) == "could not connect to slack webhook host 127.0.0.1 after 3 attempts"
    assert len(sleeps) == 2


def test_errors_never_repeat_secrets(rx: Receiver) -> None:
    """Failures of token- and URL-authenticated destinations say what happened without the credential."""
    rx.respond_with(500, TOKEN, times=6)
    with deliverer(rx) as (d, _):
        with pytest.raises(DeliveryError) as bot:
            d.deliver("slack", {"slack_bot_token": TOKEN, "slack_channel_id": "C0123ABCD"}, NOTICE)
        with pytest.raises(DeliveryError) as hook:
            d.deliver("slack", {"slack_webhook_url": f"{rx.url}/services/T0/B0/SECRETPART"}, NOTICE)
    assert str(bot.value) == "slack answered 500 after 3 attempts"
    assert str(hook.value) == "slack webhook answered 500 after 3 attempts"


def test_stored_urls_are_checked_again_when_delivering(rx: Receiver) -> None:
    """A loopback http:// URL is refused at delivery when the setting is off; nothing is sent."""
    with deliverer(rx, allow_http_loopback=False) as (d, _), pytest.raises(DeliveryError) as caught:
        d.deliver("webhook", {"webhook_url": f"{rx.url}/hook", "signing_secret": SECRET}, NOTICE)
    assert str(caught.value) == "webhook URL refused: it must be an https:// URL"
    assert rx.requests == []


def test_incomplete_configs_and_unknown_types_fail_cleanly(rx: Receiver) -> None:
    """A config missing its URL or an unknown destination type raises DeliveryError, not KeyError."""
    with deliverer(rx) as (d, _):
        with pytest.raises(DeliveryError, match="no webhook_url"):
            d.deliver("teams", {}, NOTICE)
        with pytest.raises(DeliveryError, match="no signing_secret"):
            d.deliver("webhook", {"webhook_url": f"{rx.url}/hook"}, NOTICE)
        with pytest.raises(DeliveryError, match="unknown destination type"):
            d.deliver("pagerduty", {"webhook_url": f"{rx.url}/hook"}, NOTICE)
    assert rx.requests == []


def test_slack_incoming_webhook_delivery(rx: Receiver) -> None:
    """The Block Kit message is posted to the incoming webhook; Slack's error code is reported on failure."""
    with deliverer(rx) as (d, _):
        d.deliver("slack", {"slack_webhook_url": f"{rx.url}/services/T0/B0/X"}, ERRORED)
        rx.respond_with(404, "no_service")
        with pytest.raises(DeliveryError) as caught:
            d.deliver("slack", {"slack_webhook_url": f"{rx.url}/services/T0/B0/X"}, NOTICE)
    first, second = rx.requests
    assert first.path == "/services/T0/B0/X" and first.json == slack_message(ERRORED)
    assert str(caught.value) == "slack webhook answered 404 (no_service)"
    assert second.json == slack_message(NOTICE)


def test_slack_bot_token_delivery(rx: Receiver) -> None:
    """chat.postMessage gets the message, the channel and the bearer token."""
    with deliverer(rx) as (d, _):
        d.deliver("slack", {"slack_bot_token": TOKEN, "slack_channel_id": "C0123ABCD"}, NOTICE)
    [request] = rx.wait_for(1)
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json == {**slack_message(NOTICE), "channel": "C0123ABCD"}


def test_slack_ok_false_is_a_failure_and_only_ratelimited_is_retried(rx: Receiver) -> None:
    """{"ok": false} fails with Slack's error at once; "ratelimited" is retried and can then succeed."""
    config = {"slack_bot_token": TOKEN, "slack_channel_id": "C0123ABCD"}
    rx.slack_error("channel_not_found")
    with deliverer(rx) as (d, sleeps):
        with pytest.raises(DeliveryError) as caught:
            d.deliver("slack", config, NOTICE)
        assert str(caught.value) == "slack answered channel_not_found"
        assert len(rx.requests) == 1 and sleeps == []
        rx.slack_error("ratelimited")
        d.deliver("slack", config, NOTICE)
    assert len(rx.requests) == 3 and sleeps == [0.5]


def test_slack_answering_junk_is_a_failure(rx: Receiver) -> None:
    """A 200 from chat.postMessage that is not Slack's JSON is reported, not taken as delivered."""
    rx.respond_with(200, "<html>proxy login</html>")
    with deliverer(rx) as (d, _), pytest.raises(DeliveryError, match="other than a JSON object"):
        d.deliver("slack", {"slack_bot_token": TOKEN, "slack_channel_id": "C0123ABCD"}, NOTICE)


def test_teams_delivery(rx: Receiver) -> None:
    """The Teams webhook receives the Adaptive Card message; a 202 counts as delivered."""
    rx.respond_with(202)
    with deliverer(rx) as (d, _):
        d.deliver("teams", {"webhook_url": f"{rx.url}/workflows/1"}, BROKEN)
    [request] = rx.wait_for(1)
    assert request.json == teams_message(BROKEN)
    assert request.headers["content-type"] == "application/json"


def test_receiver_wait_is_bounded(rx: Receiver) -> None:
    """wait_for gives up with an AssertionError when too few requests arrive."""
    with pytest.raises(AssertionError, match="expected 1 requests"):
        rx.wait_for(1, timeout=0.05)


def _resolving_to(address: str) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "127.0.0.1", "fd00::1", "192.168.0.9"])
def test_a_host_name_resolving_inside_the_network_is_refused(
    rx: Receiver, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """An https destination whose name resolves to a private, link-local or loopback address is refused at
    delivery (the resolver is the operating system's, replaced here so the test needs no DNS)."""
    monkeypatch.setattr(socket, "getaddrinfo", _resolving_to(address))
    with deliverer(rx, allow_http_loopback=False) as (d, _), pytest.raises(DeliveryError) as caught:
        d.deliver("webhook", {"webhook_url": "https://hooks.example.com/x", "signing_secret": SECRET}, NOTICE)
    assert str(caught.value) == "webhook host hooks.example.com resolves to a loopback or private address"
    assert rx.requests == []


def test_a_host_name_that_does_not_resolve_is_retried_then_reported(
    rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name the resolver cannot find is a retryable failure, reported after the last attempt."""

    def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with deliverer(rx, attempts=2) as (d, sleeps), pytest.raises(DeliveryError) as caught:
        d.deliver("teams", {"webhook_url": "https://teams.example.com/hook"}, NOTICE)
    assert str(caught.value) == "could not resolve teams webhook host teams.example.com after 2 attempts"
    assert len(sleeps) == 1
