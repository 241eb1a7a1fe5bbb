-- The embedded SQLite default keeps the same two rules as PostgreSQL for transactions (see
-- banking_invariants.sql): posted transactions are fixed, and the daily balances follow the
-- posted rows. (Allocation limits, and that posted rows are not deleted, are checked in Python
-- there: Django empties SQLite tables with DELETE, e.g. between transactional tests, where
-- PostgreSQL uses TRUNCATE, which row triggers do not see.)
CREATE TRIGGER banking_txn_posted_fixed
BEFORE UPDATE ON banking_banktransaction
FOR EACH ROW
WHEN OLD.posting_status = 'posted' AND (
        NEW.posting_status IS NOT OLD.posting_status
     OR NEW.journal_entry_id IS NOT OLD.journal_entry_id
     OR NEW.amount IS NOT OLD.amount
     OR NEW.date IS NOT OLD.date
     OR NEW.kind IS NOT OLD.kind
     OR NEW.direction IS NOT OLD.direction
     OR NEW.company_id IS NOT OLD.company_id
     OR NEW.bank_account_id IS NOT OLD.bank_account_id
     OR NEW.counter_account_id IS NOT OLD.counter_account_id
     OR NEW.cost_center_id IS NOT OLD.cost_center_id
     OR NEW.project_id IS NOT OLD.project_id
     OR NEW.department_id IS NOT OLD.department_id
     OR NEW.branch IS NOT OLD.branch)
BEGIN
    SELECT RAISE(ABORT, 'posted bank transactions cannot be changed');
END;

CREATE TRIGGER banking_daily_balance_insert
AFTER INSERT ON banking_banktransaction
FOR EACH ROW
WHEN NEW.posting_status = 'posted'
BEGIN
    INSERT OR IGNORE INTO banking_bankdailybalance
           (company_id, bank_account_id, date, inflow, outflow, count)
    VALUES (NEW.company_id, NEW.bank_account_id, NEW.date, 0, 0, 0);
    UPDATE banking_bankdailybalance
       SET inflow = inflow + (CASE WHEN NEW.direction = 'in' THEN NEW.amount ELSE 0 END),
           outflow = outflow + (CASE WHEN NEW.direction = 'out' THEN NEW.amount ELSE 0 END),
           count = count + 1
     WHERE bank_account_id = NEW.bank_account_id AND date = NEW.date;
END;

CREATE TRIGGER banking_daily_balance_post
AFTER UPDATE ON banking_banktransaction
FOR EACH ROW
WHEN OLD.posting_status <> 'posted' AND NEW.posting_status = 'posted'
BEGIN
    INSERT OR IGNORE INTO banking_bankdailybalance
           (company_id, bank_account_id, date, inflow, outflow, count)
    VALUES (NEW.company_id, NEW.bank_account_id, NEW.date, 0, 0, 0);
    UPDATE banking_bankdailybalance
       SET inflow = inflow + (CASE WHEN NEW.direction = 'in' THEN NEW.amount ELSE 0 END),
           outflow = outflow + (CASE WHEN NEW.direction = 'out' THEN NEW.amount ELSE 0 END),
           count = count + 1
     WHERE bank_account_id = NEW.bank_account_id AND date = NEW.date;
END;
