DROP TRIGGER IF EXISTS invoicing_invoiceevent_stamp_tx ON invoicing_invoiceevent;
DROP FUNCTION IF EXISTS invoicing_invoiceevent_stamp_tx();
DROP TRIGGER IF EXISTS invoicing_invoiceevent_append_only ON invoicing_invoiceevent;
DROP FUNCTION IF EXISTS invoicing_invoiceevent_refuse_change();
