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

-- The id range of the entries an INSERT statement wrote or added lines to, per company, set on
-- the company's chain head row. Each such update (a new pending_seq) queues the commit-time
-- balance check of that range (rule 3): one set-based check per statement, not one per entry.
ALTER TABLE accounting_ledgerchain
    ADD COLUMN pending_xact xid8,
    ADD COLUMN pending_from bigint,
    ADD COLUMN pending_to bigint,
    ADD COLUMN pending_seq bigint NOT NULL DEFAULT 0;

-- Queue the balance check of entries lo..hi of a company, for this transaction.
CREATE FUNCTION accounting_queue_balance_check(company bigint, lo bigint, hi bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounting_ledgerchain
       SET pending_xact = pg_current_xact_id(), pending_from = lo, pending_to = hi,
           pending_seq = pending_seq + 1
     WHERE company_id = company;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'journal entries of company %, which has no ledger chain head', company
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN true;
END $$;

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
    -- Queue the balance check of these entries (rule 3) on each company's chain head.
    PERFORM accounting_queue_balance_check(company_id, min(id), max(id))
       FROM new_entries GROUP BY company_id;
    RETURN NULL;
END $$;

CREATE TRIGGER accounting_entry_insert_check
    AFTER INSERT ON accounting_journalentry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_entry_insert_check();

-- 2. New lines: on an entry created by this transaction, of the same company, to a postable,
--    active account and active dimensions of that company. This check stands in for the
--    foreign keys of journal lines, which are left out because PostgreSQL would check each one
--    row by row at commit; rule 6 keeps referenced accounts and dimensions from being deleted.
CREATE FUNCTION accounting_line_insert_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
    locked bigint;
BEGIN
    -- Lock what the lines refer to (as foreign keys would), so a concurrent delete either
    -- commits first and is seen below, or waits and then sees these lines (rule 6).
    WITH a AS (SELECT id FROM accounting_account
                WHERE id IN (SELECT account_id FROM new_lines) ORDER BY id FOR KEY SHARE),
         cc AS (SELECT id FROM accounting_costcenter
                 WHERE id IN (SELECT cost_center_id FROM new_lines) ORDER BY id FOR KEY SHARE),
         pr AS (SELECT id FROM accounting_project
                 WHERE id IN (SELECT project_id FROM new_lines) ORDER BY id FOR KEY SHARE),
         d AS (SELECT id FROM accounting_department
                WHERE id IN (SELECT department_id FROM new_lines) ORDER BY id FOR KEY SHARE)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM cc) + (SELECT count(*) FROM pr)
           + (SELECT count(*) FROM d)
      INTO locked;
    SELECT n.id, n.entry_id, a.code, a.is_postable, a.is_active,
           (e.id IS NULL) AS no_entry,
           (e.created_xact <> pg_current_xact_id()) AS old_entry
      INTO bad
      FROM new_lines n
      LEFT JOIN accounting_journalentry e ON e.id = n.entry_id
      LEFT JOIN accounting_account a ON a.id = n.account_id
      LEFT JOIN accounting_costcenter cc ON cc.id = n.cost_center_id
      LEFT JOIN accounting_project pr ON pr.id = n.project_id
      LEFT JOIN accounting_department d ON d.id = n.department_id
     WHERE e.id IS NULL
        OR e.created_xact <> pg_current_xact_id()
        OR e.company_id <> n.company_id
        OR a.id IS NULL
        OR a.company_id <> n.company_id
        OR NOT a.is_postable
        OR NOT a.is_active
        OR (n.cost_center_id IS NOT NULL
            AND (cc.id IS NULL OR cc.company_id <> n.company_id OR NOT cc.is_active))
        OR (n.project_id IS NOT NULL
            AND (pr.id IS NULL OR pr.company_id <> n.company_id OR NOT pr.is_active))
        OR (n.department_id IS NOT NULL
            AND (d.id IS NULL OR d.company_id <> n.company_id OR NOT d.is_active))
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
        RAISE EXCEPTION 'journal line %: its account or a dimension is missing, belongs to '
                        'another company, or a dimension is inactive', bad.id
            USING ERRCODE = 'check_violation';
    END IF;
    -- Lines added in another statement than their entry's (raw SQL) queue their own check.
    PERFORM accounting_queue_balance_check(company_id, min(entry_id), max(entry_id))
       FROM new_lines GROUP BY company_id;
    RETURN NULL;
END $$;

CREATE TRIGGER accounting_line_insert_check
    AFTER INSERT ON accounting_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_line_insert_check();

-- 3. At commit, each entry the transaction inserted has at least two lines, they balance,
--    and they add up to the entry's total: one set-based check per company and INSERT
--    statement, over the id range that statement queued on the chain head. Every statement
--    that inserts entries or lines queues its own range, so a line added after an early check
--    (SET CONSTRAINTS ... IMMEDIATE) is checked again at commit.
CREATE FUNCTION accounting_entry_balance_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    IF NEW.pending_xact IS DISTINCT FROM pg_current_xact_id() THEN
        RETURN NULL;  -- not a range this transaction queued
    END IF;
    SELECT e.id, e.total, x.line_count, x.debits, x.credits
      INTO bad
      FROM accounting_journalentry e
      CROSS JOIN LATERAL (
          SELECT count(*) AS line_count, coalesce(sum(l.debit), 0) AS debits,
                 coalesce(sum(l.credit), 0) AS credits
            FROM accounting_journalline l WHERE l.entry_id = e.id) x
     WHERE e.company_id = NEW.company_id
       AND e.id BETWEEN NEW.pending_from AND NEW.pending_to
       AND e.created_xact = pg_current_xact_id()
       AND (x.line_count < 2 OR x.debits <> x.credits OR x.debits <> e.total)
     ORDER BY e.id
     LIMIT 1;
    IF FOUND THEN
        IF bad.line_count < 2 THEN
            RAISE EXCEPTION 'journal entry % has % line(s); at least two are needed',
                            bad.id, bad.line_count
                USING ERRCODE = 'check_violation';
        ELSIF bad.debits <> bad.credits THEN
            RAISE EXCEPTION 'journal entry % does not balance: debits % <> credits % '
                            '(difference %)', bad.id, bad.debits, bad.credits,
                            bad.debits - bad.credits
                USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'journal entry %: lines total % but the entry says %',
                        bad.id, bad.debits, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER accounting_entry_balance_check
    AFTER UPDATE ON accounting_ledgerchain
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.pending_seq IS DISTINCT FROM OLD.pending_seq)
    EXECUTE FUNCTION accounting_entry_balance_check();

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

-- 6. Accounts and dimensions that journal lines use are never deleted (journal lines carry no
--    foreign-key constraints; see rule 2).
CREATE FUNCTION accounting_referenced_delete_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used bigint;
BEGIN
    EXECUTE format(
        'SELECT o.id FROM old_rows o WHERE EXISTS '
        '(SELECT 1 FROM accounting_journalline l WHERE l.%I = o.id) LIMIT 1',
        TG_ARGV[0])
       INTO used;
    IF used IS NOT NULL THEN
        RAISE EXCEPTION '% % has journal lines and cannot be deleted; deactivate it instead',
                        TG_TABLE_NAME, used
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounting_account_delete_check
    AFTER DELETE ON accounting_account REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_referenced_delete_check('account_id');
CREATE TRIGGER accounting_costcenter_delete_check
    AFTER DELETE ON accounting_costcenter REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_referenced_delete_check('cost_center_id');
CREATE TRIGGER accounting_project_delete_check
    AFTER DELETE ON accounting_project REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_referenced_delete_check('project_id');
CREATE TRIGGER accounting_department_delete_check
    AFTER DELETE ON accounting_department REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounting_referenced_delete_check('department_id');
