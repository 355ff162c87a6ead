-- outbox.created: when the event was written rather than when its transaction began, so that the
-- relay's mci_outbox_event_delay_seconds (created to JetStream's ack) is the wait in the outbox
-- and on JetStream, not the write's own duration too.
ALTER TABLE outbox ALTER COLUMN created SET DEFAULT clock_timestamp();
