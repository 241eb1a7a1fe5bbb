-- The invoice event store is append-only: an event, once written, is never changed or removed.
-- Corrections are new events (void, credit note). SQLSTATE 23001 (restrict_violation) reaches
-- Django as IntegrityError. TRUNCATE is left to operators (and the test runner's flush).
CREATE OR REPLACE FUNCTION invoicing_invoiceevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invoice events are append-only: % on invoicing_invoiceevent refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER invoicing_invoiceevent_append_only
    BEFORE UPDATE OR DELETE ON invoicing_invoiceevent
    FOR EACH ROW EXECUTE FUNCTION invoicing_invoiceevent_refuse_change();

-- Each event records the id of the transaction that appended it. Ids are assigned at insert
-- but become visible at commit, so a consumer of the global log reads only events whose
-- transaction is older than every transaction still running (pg_snapshot_xmin): nothing can
-- commit behind its checkpoint later. See invoicing/events.py.
CREATE OR REPLACE FUNCTION invoicing_invoiceevent_stamp_tx() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.transaction_id := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END;
$$;

CREATE TRIGGER invoicing_invoiceevent_stamp_tx
    BEFORE INSERT ON invoicing_invoiceevent
    FOR EACH ROW EXECUTE FUNCTION invoicing_invoiceevent_stamp_tx();
