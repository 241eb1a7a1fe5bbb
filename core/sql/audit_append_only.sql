-- Audit events are append-only: no row may be changed or removed once written.
-- SQLSTATE 23001 (restrict_violation) surfaces in Django as IntegrityError.
CREATE OR REPLACE FUNCTION core_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % on core_auditevent refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER core_auditevent_append_only
    BEFORE UPDATE OR DELETE ON core_auditevent
    FOR EACH ROW EXECUTE FUNCTION core_auditevent_refuse_change();
