DROP INDEX IF EXISTS banking_match_crossing;
DROP TRIGGER IF EXISTS banking_line_matched_fixed ON banking_statementline;
DROP FUNCTION IF EXISTS banking_line_matched_fixed();
DROP TRIGGER IF EXISTS banking_line_reconciled_guard ON banking_statementline;
DROP TRIGGER IF EXISTS banking_txn_reconciled_guard ON banking_banktransaction;
DROP FUNCTION IF EXISTS banking_reconciled_guard();
DROP TRIGGER IF EXISTS banking_match_delete ON banking_reconciliationmatch;
DROP TRIGGER IF EXISTS banking_match_update ON banking_reconciliationmatch;
DROP TRIGGER IF EXISTS banking_match_insert ON banking_reconciliationmatch;
DROP FUNCTION IF EXISTS banking_match_deleted();
DROP FUNCTION IF EXISTS banking_match_updated();
DROP FUNCTION IF EXISTS banking_match_inserted();
DROP FUNCTION IF EXISTS banking_match_verify(bigint[]);
DROP FUNCTION IF EXISTS banking_match_sync(bigint[], bigint[]);

-- back to rule 3 of banking_invariants.sql
-- 3. Reconciliation allocations: the accepted allocations of a statement line never exceed
--    |line amount|, those of a transaction never exceed its amount, and a line is only matched
--    to a transaction of the same company and bank account. Checked once per statement over
--    the rows it wrote (bulk auto-reconciliation writes thousands in one INSERT).
CREATE FUNCTION banking_match_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.statement_line_id, n.bank_transaction_id
      INTO bad
      FROM new_rows n
      JOIN banking_statementline l ON l.id = n.statement_line_id
      JOIN banking_banktransaction t ON t.id = n.bank_transaction_id
     WHERE l.bank_account_id <> t.bank_account_id
        OR l.company_id <> n.company_id
        OR t.company_id <> n.company_id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'reconciliation match %: statement line % and bank transaction % belong '
                        'to different bank accounts or companies',
                        bad.id, bad.statement_line_id, bad.bank_transaction_id
            USING ERRCODE = 'check_violation';
    END IF;

    SELECT l.id, l.amount, s.allocated
      INTO bad
      FROM (SELECT m.statement_line_id, sum(m.amount) AS allocated
              FROM banking_reconciliationmatch m
             WHERE m.status = 'accepted'
               AND m.statement_line_id IN (SELECT statement_line_id FROM new_rows
                                            WHERE status = 'accepted')
             GROUP BY m.statement_line_id) s
      JOIN banking_statementline l ON l.id = s.statement_line_id
     WHERE s.allocated > abs(l.amount)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'statement line %: accepted allocations % exceed its amount %',
                        bad.id, bad.allocated, abs(bad.amount)
            USING ERRCODE = 'check_violation';
    END IF;

    SELECT t.id, t.amount, s.allocated
      INTO bad
      FROM (SELECT m.bank_transaction_id, sum(m.amount) AS allocated
              FROM banking_reconciliationmatch m
             WHERE m.status = 'accepted'
               AND m.bank_transaction_id IN (SELECT bank_transaction_id FROM new_rows
                                              WHERE status = 'accepted')
             GROUP BY m.bank_transaction_id) s
      JOIN banking_banktransaction t ON t.id = s.bank_transaction_id
     WHERE s.allocated > t.amount
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'bank transaction %: accepted allocations % exceed its amount %',
                        bad.id, bad.allocated, bad.amount
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER banking_match_check_insert
    AFTER INSERT ON banking_reconciliationmatch
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_match_check();

CREATE TRIGGER banking_match_check_update
    AFTER UPDATE ON banking_reconciliationmatch
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_match_check();
