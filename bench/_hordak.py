"""django-hordak 2.x beside our ledger, for `python -m bench ledger`.

The ledger benchmark calls `measure()`, which runs this module as a subprocess
(`python -m bench._hordak`) with the settings bench._hordak_settings: the test settings plus
"mptt" and "hordak". The subprocess creates its own throwaway database (bench_hordak_<name>, next
to the ledger benchmark's bench_<name>), migrates it, posts the same two-leg transactions twice,
prints one JSON object and drops the database. Hordak thus never enters the settings of the test
suite or of the parent benchmark process.

Hordak is installed only for benchmarks: `pip install -r requirements/bench.txt`. Its migrations
need PostgreSQL (or MySQL), so on SQLite the comparison is reported as unavailable.
"""

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = "bench._hordak_settings"
INSTALL_HINT = "pip install -r requirements/bench.txt"
TIMEOUT_SECONDS = 1800
WARMUP_TRANSFERS = 20
AMOUNT_SEED = 20_000


def transfer_amounts(count: int) -> list[Decimal]:
    """The amounts of the two-leg transactions both ledgers post: 1.00 to 5,000.00, in cents."""
    rng = random.Random(AMOUNT_SEED)
    return [Decimal(rng.randint(100, 500_000)).scaleb(-2) for _ in range(count)]


def unavailable_reason(vendor: str) -> str | None:
    """Why hordak cannot be measured here, or None when it can."""
    if importlib.util.find_spec("hordak") is None:
        return f"django-hordak is not installed ({INSTALL_HINT})"
    if vendor != "postgresql":
        return f"django-hordak needs PostgreSQL here, not {vendor}"
    return None


def measure(*, transactions: int, chunk: int) -> dict:
    """Run the hordak side in a subprocess and return its figures; raises on failure."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}
    args = [sys.executable, "-m", "bench._hordak", str(transactions), "--chunk", str(chunk)]
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-15:]
        raise RuntimeError("django-hordak run failed:\n" + "\n".join(tail))
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------------------------
# The subprocess
# ---------------------------------------------------------------------------------------------
@contextmanager
def _throwaway_database() -> Iterator[None]:
    from django.db import connection

    original_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"bench_hordak_{original_name}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=False)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0, keepdb=False)


def _run(transactions: int, chunk: int) -> dict:
    from importlib.metadata import version

    from django.db import connection, transaction
    from djmoney.money import Money
    from hordak.models import Account, AccountType, Leg, Transaction

    if connection.vendor != "postgresql":
        raise RuntimeError(f"django-hordak needs PostgreSQL here, not {connection.vendor}")
    bank = Account.objects.create(name="Bank", type=AccountType.asset, currencies=["EUR"])
    sales = Account.objects.create(name="Sales", type=AccountType.income, currencies=["EUR"])
    amounts = [Money(amount, "EUR") for amount in transfer_amounts(transactions)]

    # Public API: one transfer_to per transaction, each in its own database transaction.
    for amount in amounts[:WARMUP_TRANSFERS]:
        sales.transfer_to(bank, amount, description="warm-up")
    samples = []
    started = time.perf_counter()
    for amount in amounts:
        one = time.perf_counter()
        sales.transfer_to(bank, amount, description="bench transfer")
        samples.append((time.perf_counter() - one) * 1000)
    api_seconds = time.perf_counter() - started

    # Bulk path: bulk_create of transactions, then of their legs, `chunk` transactions per
    # database transaction; hordak's deferred leg checks run at each commit.
    started = time.perf_counter()
    for first in range(0, transactions, chunk):
        part = amounts[first : first + chunk]
        with transaction.atomic():
            rows = Transaction.objects.bulk_create(
                [Transaction(description="bench bulk") for _ in part]
            )
            legs = []
            for row, amount in zip(rows, part, strict=True):
                legs.append(Leg(transaction=row, account=sales, credit=amount))
                legs.append(Leg(transaction=row, account=bank, debit=amount))
            Leg.objects.bulk_create(legs)
    bulk_seconds = time.perf_counter() - started

    expected = 2 * (WARMUP_TRANSFERS + 2 * transactions)
    legs_found = Leg.objects.count()
    if legs_found != expected:
        raise RuntimeError(f"expected {expected} hordak legs, found {legs_found}")
    return {
        "hordak_version": version("django-hordak"),
        "transactions": transactions,
        "api_legs_per_s": round(2 * transactions / api_seconds),
        "api_transfer_median_ms": round(statistics.median(samples), 3),
        "bulk_legs_per_s": round(2 * transactions / bulk_seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._hordak")
    parser.add_argument("transactions", type=int)
    parser.add_argument("--chunk", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    import django

    django.setup()
    with redirect_stdout(sys.stderr), _throwaway_database():
        figures = _run(args.transactions, args.chunk)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
