DROP TRIGGER IF EXISTS accounting_department_delete_check ON accounting_department;
DROP TRIGGER IF EXISTS accounting_project_delete_check ON accounting_project;
DROP TRIGGER IF EXISTS accounting_costcenter_delete_check ON accounting_costcenter;
DROP TRIGGER IF EXISTS accounting_account_delete_check ON accounting_account;
DROP FUNCTION IF EXISTS accounting_referenced_delete_check();
DROP TRIGGER IF EXISTS accounting_entry_update_check ON accounting_journalentry;
DROP FUNCTION IF EXISTS accounting_entry_update_check();
DROP TRIGGER IF EXISTS accounting_line_immutable ON accounting_journalline;
DROP FUNCTION IF EXISTS accounting_line_immutable();
DROP TRIGGER IF EXISTS accounting_entry_balance_check ON accounting_ledgerchain;
DROP FUNCTION IF EXISTS accounting_entry_balance_check();
DROP TRIGGER IF EXISTS accounting_line_insert_check ON accounting_journalline;
DROP FUNCTION IF EXISTS accounting_line_insert_check();
DROP TRIGGER IF EXISTS accounting_entry_insert_check ON accounting_journalentry;
DROP FUNCTION IF EXISTS accounting_entry_insert_check();
DROP FUNCTION IF EXISTS accounting_queue_balance_check(bigint, bigint, bigint);
ALTER TABLE accounting_ledgerchain
    DROP COLUMN IF EXISTS pending_seq,
    DROP COLUMN IF EXISTS pending_xact,
    DROP COLUMN IF EXISTS pending_from,
    DROP COLUMN IF EXISTS pending_to;
ALTER TABLE accounting_journalentry DROP COLUMN IF EXISTS created_xact;
