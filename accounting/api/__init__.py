"""The general ledger's REST API: accounts, account roles, dimensions, fiscal years and periods,
journal entries and the ledger reports. Views are thin: every write is one accounting.services
call and every report one accounting.selectors call."""
