-- Banking invariants, enforced by PostgreSQL so that nothing that goes around banking.services
-- (raw SQL, QuerySet.update, bulk_create, COPY) can break them. SQLSTATE 23514
-- (check_violation) reaches Django as IntegrityError.

-- 1. A posted transaction is what its journal entry says: amount, date, kind, direction, bank
--    account, counter account, dimensions and branch never change; it is never moved back to
--    draft, attached to another entry, or deleted. Corrections are new transactions.
--    (Reconciliation may still update reconciled_amount, value_date, reference and memo.)
CREATE FUNCTION banking_txn_refuse_posted_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bank transaction %: posted transactions cannot be % (amount, date, kind, '
                    'accounts, dimensions and journal entry are fixed once posted)',
                    OLD.id, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER banking_txn_posted_fixed
    BEFORE UPDATE ON banking_banktransaction
    FOR EACH ROW
    WHEN (OLD.posting_status = 'posted' AND (
            NEW.posting_status IS DISTINCT FROM OLD.posting_status
         OR NEW.journal_entry_id IS DISTINCT FROM OLD.journal_entry_id
         OR NEW.amount IS DISTINCT FROM OLD.amount
         OR NEW.date IS DISTINCT FROM OLD.date
         OR NEW.kind IS DISTINCT FROM OLD.kind
         OR NEW.direction IS DISTINCT FROM OLD.direction
         OR NEW.company_id IS DISTINCT FROM OLD.company_id
         OR NEW.bank_account_id IS DISTINCT FROM OLD.bank_account_id
         OR NEW.counter_account_id IS DISTINCT FROM OLD.counter_account_id
         OR NEW.cost_center_id IS DISTINCT FROM OLD.cost_center_id
         OR NEW.project_id IS DISTINCT FROM OLD.project_id
         OR NEW.department_id IS DISTINCT FROM OLD.department_id
         OR NEW.branch IS DISTINCT FROM OLD.branch))
    EXECUTE FUNCTION banking_txn_refuse_posted_change();

CREATE TRIGGER banking_txn_posted_kept
    BEFORE DELETE ON banking_banktransaction
    FOR EACH ROW
    WHEN (OLD.posting_status = 'posted')
    EXECUTE FUNCTION banking_txn_refuse_posted_change();

-- 2. Posted inflow and outflow per account and day (banking_bankdailybalance), so that a cash
--    position over years of history reads one row per day instead of every transaction.
--    Inserts (one or a million rows, posted or draft) are summed once per statement; a draft
--    becoming posted adds its row. Posted rows cannot change or go (rule 1), so nothing else
--    moves a balance.
CREATE FUNCTION banking_daily_balance_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO banking_bankdailybalance AS b
           (company_id, bank_account_id, date, inflow, outflow, count)
    SELECT company_id, bank_account_id, date,
           coalesce(sum(amount) FILTER (WHERE direction = 'in'), 0),
           coalesce(sum(amount) FILTER (WHERE direction = 'out'), 0),
           count(*)
      FROM new_rows
     WHERE posting_status = 'posted'
     GROUP BY company_id, bank_account_id, date
    ON CONFLICT (bank_account_id, date) DO UPDATE
       SET inflow = b.inflow + EXCLUDED.inflow,
           outflow = b.outflow + EXCLUDED.outflow,
           count = b.count + EXCLUDED.count;
    RETURN NULL;
END $$;

CREATE TRIGGER banking_daily_balance_insert
    AFTER INSERT ON banking_banktransaction
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION banking_daily_balance_add_inserted();

CREATE FUNCTION banking_daily_balance_add_posted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO banking_bankdailybalance AS b
           (company_id, bank_account_id, date, inflow, outflow, count)
    VALUES (NEW.company_id, NEW.bank_account_id, NEW.date,
            CASE WHEN NEW.direction = 'in' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.direction = 'out' THEN NEW.amount ELSE 0 END,
            1)
    ON CONFLICT (bank_account_id, date) DO UPDATE
       SET inflow = b.inflow + EXCLUDED.inflow,
           outflow = b.outflow + EXCLUDED.outflow,
           count = b.count + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER banking_daily_balance_post
    AFTER UPDATE ON banking_banktransaction
    FOR EACH ROW
    WHEN (OLD.posting_status <> 'posted' AND NEW.posting_status = 'posted')
    EXECUTE FUNCTION banking_daily_balance_add_posted();

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
