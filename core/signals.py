"""Explicit hooks from core's company services to the modules built on core.

core may not import accounting (dependencies point one way), yet a new company needs its chart
of accounts and a company whose ledger has started may not change currency. The company
services send these signals inside their transaction with `send` (not `send_robust`), so a
receiver's error rolls the whole change back and reaches the caller.
"""

from django.dispatch import Signal

# company_create, after the company row is saved: kwargs company, actor.
company_created = Signal()
# company_update, after validation and before saving: kwargs company (with the new values set),
# changes (the names of the fields that change), actor.
company_changing = Signal()
