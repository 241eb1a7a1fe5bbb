-- Consumers of the event log no longer order by the appending transaction's id: appenders
-- hold a shared advisory lock and readers take it exclusively for an instant to find the
-- committed horizon (invoicing/events.py), which does not depend on transactions in other
-- databases of the server. The per-row stamp goes.
DROP TRIGGER IF EXISTS invoicing_invoiceevent_stamp_tx ON invoicing_invoiceevent;
DROP FUNCTION IF EXISTS invoicing_invoiceevent_stamp_tx();
