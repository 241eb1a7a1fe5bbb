-- Reconciliation, database as backstop (replaces rule 3 of banking_invariants.sql).
--
-- A statement line's and a transaction's reconciled_amount (and a line's status) are DERIVED
-- from the accepted matches: the statement triggers on banking_reconciliationmatch recompute
-- them for the lines and transactions a statement touched (insert, update or delete; one
-- COPY of a hundred thousand matches is one recomputation), writing only rows whose figure
-- changes. Nothing else may change them: a QuerySet.update() or raw UPDATE of
-- reconciled_amount (or of a line's status, ignoring aside) is refused. The caps follow from
-- the derived figures and the check constraints (0 <= reconciled <= |amount|).
--
-- Each live (suggested or accepted) match needs a POSTED transaction going the line's way
-- (money in against money in), of the same bank account and company; its bank_account,
-- booked_on (the transaction's date) and cleared_on (the line's date) copies are filled when
-- left empty and refused when they disagree. A line's amount, sign or account never changes
-- while it has live matches.

DROP TRIGGER IF EXISTS banking_match_check_insert ON banking_reconciliationmatch;
DROP TRIGGER IF EXISTS banking_match_check_update ON banking_reconciliationmatch;
DROP FUNCTION IF EXISTS banking_match_check();

CREATE FUNCTION banking_match_sync(line_ids bigint[], txn_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('banking.reconciled_sync', 'on', true);
    UPDATE banking_statementline l
       SET reconciled_amount = s.total,
           status = s.status
      FROM (SELECT l2.id, x.total,
                   CASE WHEN l2.status = 'ignored' THEN 'ignored'
                        WHEN x.total <= 0 THEN 'unmatched'
                        WHEN x.total >= abs(l2.amount) THEN 'matched'
                        ELSE 'partially_matched' END AS status
              FROM (SELECT u.id, coalesce(sum(m.amount) FILTER (WHERE m.status = 'accepted'), 0)
                           AS total
                      FROM (SELECT DISTINCT unnest(line_ids) AS id) u
                      LEFT JOIN banking_reconciliationmatch m ON m.statement_line_id = u.id
                     GROUP BY u.id) x
              JOIN banking_statementline l2 ON l2.id = x.id) s
     WHERE l.id = s.id
       AND (l.reconciled_amount <> s.total OR l.status <> s.status);
    UPDATE banking_banktransaction t
       SET reconciled_amount = x.total
      FROM (SELECT u.id, coalesce(sum(m.amount) FILTER (WHERE m.status = 'accepted'), 0)
                   AS total
              FROM (SELECT DISTINCT unnest(txn_ids) AS id) u
              LEFT JOIN banking_reconciliationmatch m ON m.bank_transaction_id = u.id
             GROUP BY u.id) x
     WHERE t.id = x.id
       AND t.reconciled_amount <> x.total;
    PERFORM set_config('banking.reconciled_sync', 'off', true);
END $$;

CREATE FUNCTION banking_match_verify(match_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- fill the copies left empty (imports of old data, hand-written rows)
    UPDATE banking_reconciliationmatch m
       SET bank_account_id = l.bank_account_id, cleared_on = l.date, booked_on = t.date
      FROM banking_statementline l, banking_banktransaction t
     WHERE m.id = ANY (match_ids)
       AND l.id = m.statement_line_id AND t.id = m.bank_transaction_id
       AND (m.bank_account_id IS NULL OR m.cleared_on IS NULL OR m.booked_on IS NULL);
    SELECT m.id, m.statement_line_id, m.bank_transaction_id,
           CASE WHEN l.bank_account_id <> t.bank_account_id OR l.company_id <> m.company_id
                     OR t.company_id <> m.company_id
                THEN 'belong to different bank accounts or companies'
                WHEN m.status <> 'rejected' AND t.posting_status <> 'posted'
                THEN 'cannot be matched: the transaction is not posted'
                WHEN (l.amount > 0) <> (t.direction = 'in')
                THEN 'go opposite ways (money in against money out)'
                ELSE 'disagree with the match''s account or dates' END AS reason
      INTO bad
      FROM banking_reconciliationmatch m
      JOIN banking_statementline l ON l.id = m.statement_line_id
      JOIN banking_banktransaction t ON t.id = m.bank_transaction_id
     WHERE m.id = ANY (match_ids)
       AND (l.bank_account_id <> t.bank_account_id
            OR l.company_id <> m.company_id OR t.company_id <> m.company_id
            OR (m.status <> 'rejected' AND t.posting_status <> 'posted')
            OR (l.amount > 0) <> (t.direction = 'in')
            OR m.bank_account_id IS DISTINCT FROM l.bank_account_id
            OR m.cleared_on IS DISTINCT FROM l.date
            OR m.booked_on IS DISTINCT FROM t.date)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'reconciliation match %: statement line % and bank transaction % %',
                        bad.id, bad.statement_line_id, bad.bank_transaction_id, bad.reason
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION banking_match_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM banking_match_verify(ARRAY(SELECT id FROM new_rows));
    PERFORM banking_match_sync(
        ARRAY(SELECT statement_line_id FROM new_rows WHERE status = 'accepted'),
        ARRAY(SELECT bank_transaction_id FROM new_rows WHERE status = 'accepted'));
    RETURN NULL;
END $$;

CREATE FUNCTION banking_match_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN  -- the copies filled in by banking_match_verify
        RETURN NULL;
    END IF;
    PERFORM banking_match_verify(ARRAY(SELECT id FROM new_rows));
    PERFORM banking_match_sync(
        ARRAY(SELECT statement_line_id FROM new_rows UNION SELECT statement_line_id FROM old_rows),
        ARRAY(SELECT bank_transaction_id FROM new_rows
              UNION SELECT bank_transaction_id FROM old_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION banking_match_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM banking_match_sync(
        ARRAY(SELECT statement_line_id FROM old_rows WHERE status = 'accepted'),
        ARRAY(SELECT bank_transaction_id FROM old_rows WHERE status = 'accepted'));
    RETURN NULL;
END $$;

CREATE TRIGGER banking_match_insert
    AFTER INSERT ON banking_reconciliationmatch
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_match_inserted();

CREATE TRIGGER banking_match_update
    AFTER UPDATE ON banking_reconciliationmatch
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_match_updated();

CREATE TRIGGER banking_match_delete
    AFTER DELETE ON banking_reconciliationmatch
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_match_deleted();

-- reconciled_amount (and a line's status) only through the matches
CREATE FUNCTION banking_reconciled_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('banking.reconciled_sync', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION '%: reconciled amounts follow the accepted reconciliation matches and '
                        'cannot be set directly (row %)', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER banking_txn_reconciled_guard
    BEFORE UPDATE ON banking_banktransaction
    FOR EACH ROW
    WHEN (NEW.reconciled_amount IS DISTINCT FROM OLD.reconciled_amount)
    EXECUTE FUNCTION banking_reconciled_guard();

CREATE TRIGGER banking_line_reconciled_guard
    BEFORE UPDATE ON banking_statementline
    FOR EACH ROW
    WHEN (NEW.reconciled_amount IS DISTINCT FROM OLD.reconciled_amount
          OR (NEW.status IS DISTINCT FROM OLD.status
              AND NEW.status <> 'ignored' AND OLD.status <> 'ignored'))
    EXECUTE FUNCTION banking_reconciled_guard();

CREATE FUNCTION banking_line_matched_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM banking_reconciliationmatch
                WHERE statement_line_id = OLD.id AND status <> 'rejected') THEN
        RAISE EXCEPTION 'statement line %: its amount and account are fixed while it is matched',
                        OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER banking_line_matched_fixed
    BEFORE UPDATE ON banking_statementline
    FOR EACH ROW
    WHEN (NEW.amount IS DISTINCT FROM OLD.amount
          OR NEW.bank_account_id IS DISTINCT FROM OLD.bank_account_id
          OR NEW.date IS DISTINCT FROM OLD.date)
    EXECUTE FUNCTION banking_line_matched_fixed();

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- the match's date copies: a GiST index on the span between booking and clearing answers
-- "what crossed this month end" (booked on or before it and cleared after, or the reverse)
CREATE INDEX banking_match_crossing ON banking_reconciliationmatch
    USING gist (bank_account_id, daterange(least(booked_on, cleared_on),
                                           greatest(booked_on, cleared_on), '[)'))
    WHERE status = 'accepted' AND booked_on <> cleared_on;
