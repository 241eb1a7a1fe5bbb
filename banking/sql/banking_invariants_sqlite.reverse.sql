DROP TRIGGER IF EXISTS banking_daily_balance_post;
DROP TRIGGER IF EXISTS banking_daily_balance_insert;
DROP TRIGGER IF EXISTS banking_txn_posted_kept;
DROP TRIGGER IF EXISTS banking_txn_posted_fixed;
