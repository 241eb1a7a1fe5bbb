-- The general ledger's invariants, enforced by PostgreSQL so that nothing that goes around
-- accounting.services (raw SQL, QuerySet.update, bulk_create) can break them.
--
-- Checks that look at whole sets of rows are statement-level triggers over transition tables:
-- one set-based query per INSERT however many rows it carries, which keeps bulk posting fast.
-- The balance check must wait until every line is in, so it is a deferred constraint trigger,
-- run once per entry at COMMIT.

-- Which transaction created an entry. Lines may only be added to entries of the same
-- transaction: once an entry is committed, nothing can be added to it.
ALTER TABLE accounting_journalentry
    ADD COLUMN created_xact xid8 NOT NULL DEFAULT pg_current_xact_id();

-- 1. New entries: posted, created now, in an open period of their own company that contains
--    their date.
CREATE FUNCTION accounting_entry_insert_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- Lock the periods first, then check them: a concurrent lock or close either commits
    -- before this check (which then sees it) or waits for this posting to commit.
    PERFORM 1 FROM accounting_accountingperiod p
      WHERE p.id IN (SELECT period_id FROM new_entries) FOR SHARE;
    SELECT n.id, n.date, p.status AS period_status, p.start_date, p.end_date,
           p.company_id AS period_company, p.fiscal_year_id AS period_year,
           n.company_id, n.fiscal_year_id, n.status, n.created_xact
      INTO bad
      FROM new_entries n
      LEFT JOIN accounting_accountingperiod p ON p.id = n.period_id
     WHERE p.id IS NULL
        OR p.status <> 'open'
        OR p.company_id <> n.company_id
        OR p.fiscal_year_id <> n.fiscal_year_id
        OR n.date NOT BETWEEN p.start_date AND p.end_date
        OR n.status <> 'posted'
        OR n.created_xact <> pg_current_xact_id()
     LIMIT 1;
    IF FOUND THEN
        IF bad.period_status IS DISTINCT FROM 'open' THEN
            RAISE EXCEPTION 'journal entry %: period is %, not open', bad.id, bad.period_status
                USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'journal entry %: dated %, not in its period %..% of the same company '
                        'and fiscal year, or not inserted as posted by this transaction',
                        bad.id, bad.date, bad.start_date, bad.end_date
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounting_entry_insert_check
    AFTER INSERT ON accounting_journalentry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_entry_insert_check();

-- 2. New lines: on an entry created by this transaction, of the same company, to a postable,
--    active account and active dimensions of that company.
CREATE FUNCTION accounting_line_insert_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
    -- Entries of this transaction whose balance was already checked (SET CONSTRAINTS ...
    -- IMMEDIATE runs the deferred check early): they take no more lines.
    checked_upto bigint := coalesce(
        nullif(current_setting('kontor.ledger_checked_upto', true), '')::bigint, 0);
BEGIN
    SELECT n.id, n.entry_id, a.code, a.is_postable, a.is_active,
           (e.id IS NULL) AS no_entry,
           (e.created_xact <> pg_current_xact_id() OR n.entry_id <= checked_upto) AS old_entry
      INTO bad
      FROM new_lines n
      LEFT JOIN accounting_journalentry e ON e.id = n.entry_id
      LEFT JOIN accounting_account a ON a.id = n.account_id
      LEFT JOIN accounting_costcenter cc ON cc.id = n.cost_center_id
      LEFT JOIN accounting_project pr ON pr.id = n.project_id
      LEFT JOIN accounting_department d ON d.id = n.department_id
     WHERE e.id IS NULL
        OR e.created_xact <> pg_current_xact_id()
        OR n.entry_id <= checked_upto
        OR e.company_id <> n.company_id
        OR a.company_id <> n.company_id
        OR NOT a.is_postable
        OR NOT a.is_active
        OR (n.cost_center_id IS NOT NULL AND (cc.company_id <> n.company_id OR NOT cc.is_active))
        OR (n.project_id IS NOT NULL AND (pr.company_id <> n.company_id OR NOT pr.is_active))
        OR (n.department_id IS NOT NULL AND (d.company_id <> n.company_id OR NOT d.is_active))
     LIMIT 1;
    IF FOUND THEN
        IF bad.no_entry OR bad.old_entry THEN
            RAISE EXCEPTION 'journal line %: entry % is already posted; lines cannot be added',
                            bad.id, bad.entry_id
                USING ERRCODE = 'check_violation';
        ELSIF NOT bad.is_postable THEN
            RAISE EXCEPTION 'journal line %: account % is not postable', bad.id, bad.code
                USING ERRCODE = 'check_violation';
        ELSIF NOT bad.is_active THEN
            RAISE EXCEPTION 'journal line %: account % is inactive', bad.id, bad.code
                USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'journal line %: entry, account or dimension belongs to another '
                        'company, or a dimension is inactive', bad.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounting_line_insert_check
    AFTER INSERT ON accounting_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_line_insert_check();

-- 3. At commit, each new entry has at least two lines, they balance, and they add up to the
--    entry's total.
CREATE FUNCTION accounting_entry_balance_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    line_count integer;
    debits numeric;
    credits numeric;
BEGIN
    SELECT count(*), coalesce(sum(debit), 0), coalesce(sum(credit), 0)
      INTO line_count, debits, credits
      FROM accounting_journalline WHERE entry_id = NEW.id;
    IF line_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); at least two are needed',
                        NEW.id, line_count
            USING ERRCODE = 'check_violation';
    END IF;
    IF debits <> credits THEN
        RAISE EXCEPTION 'journal entry % does not balance: debits % <> credits % (difference %)',
                        NEW.id, debits, credits, debits - credits
            USING ERRCODE = 'check_violation';
    END IF;
    IF debits <> NEW.total THEN
        RAISE EXCEPTION 'journal entry %: lines total % but the entry says %',
                        NEW.id, debits, NEW.total
            USING ERRCODE = 'check_violation';
    END IF;
    -- Seal the entries checked so far in this transaction (ids only grow), so no line can be
    -- added to them after an early check. Transaction-local: gone at commit or rollback.
    PERFORM set_config('kontor.ledger_checked_upto', greatest(NEW.id, coalesce(
        nullif(current_setting('kontor.ledger_checked_upto', true), '')::bigint, 0))::text, true);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER accounting_entry_balance_check
    AFTER INSERT ON accounting_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION accounting_entry_balance_check();

-- 4. Posted lines are never changed or removed.
CREATE FUNCTION accounting_line_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal lines are posted and cannot be %d; post a reversal instead',
                    lower(TG_OP)
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER accounting_line_immutable
    BEFORE UPDATE OR DELETE ON accounting_journalline
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_line_immutable();

-- 5. An entry is never removed, and the only change it takes is posted -> reversed.
CREATE FUNCTION accounting_entry_update_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unchanged accounting_journalentry;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'journal entry % is posted and cannot be deleted; reverse it instead',
                        OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    unchanged := NEW;
    unchanged.status := OLD.status;
    IF OLD.status <> 'posted' OR NEW.status <> 'reversed' OR unchanged IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'journal entry % is posted: its only allowed change is posted -> '
                        'reversed (was % -> %, or other fields changed)',
                        OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER accounting_entry_update_check
    BEFORE UPDATE OR DELETE ON accounting_journalentry
    FOR EACH ROW EXECUTE FUNCTION accounting_entry_update_check();
