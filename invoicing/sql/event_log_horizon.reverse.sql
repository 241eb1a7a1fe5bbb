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
