"""The third-party sample statements in ../shared/samples/statements and their expected parses.

They live beside the project, not in it: tests that need them skip where ../shared is absent (a
user's own clone) and fail instead under CI=true, where a missing folder means testing less.
"""

import base64
import datetime
import decimal
import json
import os
from pathlib import Path

import pytest
import yaml
from django.conf import settings

STATEMENTS = Path(settings.BASE_DIR).parent / "shared" / "samples" / "statements"

MT940_GOOD = ["betterplace-sepa_mt9401", "jejik-abnamro", "jejik-ing", "jejik-rabobank-iban"]
MT940_BROKEN = ["betterplace-sepa_snippet_broken"]
CAMT_GOOD = [
    "camt053.v2.all-balance-types",
    "camt053.v2.five.decimals",
    "camt053.v2.minimal",
    "camt053.v2.multi.statement",
    "camt053.v4",
    "camt053.v8",
]
CAMT_BROKEN = ["camt053.v2.wrong"]
OFX_GOOD = [
    "anzcc",
    "bank_medium",
    "bank_small",
    "checking",
    "multiple_accounts2",
    "suncorp",
]
OFX_BROKEN = ["fail_nice/date_missing", "fail_nice/decimal_error", "fail_nice/empty_balance"]


def statements_dir() -> Path:
    if not STATEMENTS.is_dir():
        message = f"sample statements not found at {STATEMENTS}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return STATEMENTS


def sample(relative: str) -> bytes:
    return (statements_dir() / relative).read_bytes()


def assert_every_sample_listed(folder: str, suffix: str, listed: list[str]) -> None:
    """A sample added upstream must be classified here, good or broken, not silently skipped."""
    base = statements_dir() / folder
    found = sorted(
        str(p.relative_to(base))[: -len(suffix)] for p in base.rglob(f"*{suffix}") if p.is_file()
    )
    assert found == sorted(listed)


# --- mt940's expected parses: YAML dumps of its Python objects, read without running them ---


class _SampleLoader(yaml.SafeLoader):
    """Builds plain dicts from `!!python/object` tags, Decimals and dates from their `apply`
    tags, and nothing else: no code from the file runs (no yaml.unsafe_load)."""


def _object(loader, suffix, node):
    data = {}
    yield data  # two-step so the recursive back-references in these dumps resolve
    if isinstance(node, yaml.MappingNode):
        data.update(loader.construct_mapping(node, deep=True))


def _apply(loader, suffix, node):
    args = loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else []
    if suffix == "decimal.Decimal":
        return decimal.Decimal(args[0])
    if suffix.endswith(".Date"):
        raw = args[0] if isinstance(args[0], bytes) else base64.b64decode(args[0])
        return datetime.date(raw[0] * 256 + raw[1], raw[2], raw[3])
    return None


_SampleLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _object)
_SampleLoader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", _apply)


def mt940_expected(name: str) -> dict:
    with (statements_dir() / "mt940" / f"{name}.yml").open() as handle:
        return yaml.load(handle, Loader=_SampleLoader)  # noqa: S506 (SafeLoader subclass)


# --- genkgo/camt's expected parses: JSON dumps with amounts in minor units ---


def camt_expected(name: str) -> list[dict]:
    """Each statement object in the dump (the dump writes an object once and refers back to it
    as __RECURSIVITY__ after that, so the statements are found wherever they sit)."""
    data = json.loads((statements_dir() / "camt053" / f"{name}.json").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("__CLASS__", "").endswith("Camt053\\DTO\\Statement"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return found


def camt_record_count(name: str) -> int:
    data = json.loads((statements_dir() / "camt053" / f"{name}.json").read_text())
    return len(data["getRecords"])


def minor_units(money: dict) -> decimal.Decimal:
    """genkgo's Money: an integer in minor units of its currency (JPY has none)."""
    places = {"JPY": 0}.get(money["getCurrency"]["getCode"], 2)
    return decimal.Decimal(money["getAmount"]).scaleb(-places)
