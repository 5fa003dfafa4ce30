"""Normalising spool records into status events (no server): both push paths, voice, odd inputs, folding."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.ingest.receiver.events import callback_record, event_record, latest_status, normalise
from tests.receiver_util import message_event

RCV = "2026-12-04T10:00:09.500000Z"


def test_message_callback_without_messagesid_uses_smssid_and_receive_time():
    record = callback_record("/twilio/status", [("SmsSid", "SM1"), ("SmsStatus", "failed"), ("ErrorCode", "30008"),
                                                ("Body", "never kept")], "tok-1", RCV)
    event = normalise(record)
    assert (event.resource, event.sid, event.status, event.error_code, event.event_id) == (
        "message", "SM1", "failed", 30008, "tok-1")
    assert event.timestamp == event.received_at == datetime(2026, 12, 4, 10, 0, 9, 500000, tzinfo=UTC)
    assert "Body" not in record["p"]


def test_callbacks_with_other_parameters_have_other_keys_and_replays_the_same_key():
    a = callback_record("/twilio/status", [("MessageSid", "SM1"), ("MessageStatus", "sent")], None, RCV)
    b = callback_record("/twilio/status", [("MessageStatus", "sent"), ("MessageSid", "SM1")], "other-token", "x")
    c = callback_record("/twilio/status", [("MessageSid", "SM1"), ("MessageStatus", "delivered")], None, RCV)
    assert a["k"] == b["k"] != c["k"]  # parameter order, token and receive time do not matter; the status does


def test_messaging_cloudevent_is_normalised_and_its_body_dropped():
    record = event_record(message_event("EV1", "SM9", "undelivered", "2026-12-04T10:00:05.000Z", 30007), RCV)
    event = normalise(record)
    assert (event.source, event.sid, event.status, event.error_code) == ("event-stream", "SM9", "undelivered", 30007)
    assert event.timestamp == datetime(2026, 12, 4, 10, 0, 5, tzinfo=UTC)
    assert event.extra == {"mcc": "510", "mnc": "10", "segments": 1,
                           "event_name": "com.twilio.messaging.message.undelivered"}
    assert "body" not in record["e"]["data"]


def test_voice_status_callback_cloudevent_takes_its_status_from_the_type():
    # the documented Voice.WebhookEvent top-level fields; no request parameters in this one
    cloud = {"specversion": "1.0", "type": "com.twilio.voice.status-callback.call.answered", "id": "EV2",
             "source": "AB1", "data": {"sid": "CA7", "timestamp": "2026-12-04T10:00:00.000Z",
                                       "eventSid": "VW1", "url": "https://mycompany.com/an-endpoint"}}
    event = normalise(event_record(cloud, RCV))
    assert (event.resource, event.sid, event.status) == ("call", "CA7", "in-progress")


def test_records_that_hold_no_status_give_none():
    test_event = {"specversion": "1.0", "type": "com.twilio.eventstreams.test-event", "id": "EV3", "data": {}}
    no_sid = {"specversion": "1.0", "type": "com.twilio.messaging.message.sent", "id": "EV4", "data": {}}
    assert normalise(event_record(test_event, RCV)) is None
    assert normalise(event_record(no_sid, RCV)) is None
    assert normalise({"src": "something-else"}) is None


def test_latest_status_breaks_rank_ties_by_time():
    delivered = normalise(event_record(message_event("E1", "SM1", "delivered", "2026-12-04T10:00:05.000Z"), RCV))
    undelivered = normalise(event_record(message_event("E2", "SM1", "undelivered", "2026-12-04T10:01:00.000Z"),
                                         RCV))
    sent = normalise(event_record(message_event("E3", "SM1", "sent", "2026-12-04T10:02:00.000Z"), RCV))
    assert latest_status([undelivered, sent, delivered])[("message", "SM1")].status == "undelivered"
