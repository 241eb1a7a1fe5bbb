"""CSV for the ledger reports, shared by the API (`?format=csv`) and the admin's export button.
Amounts are written as plain decimals with two places (no thousands separators), which every
spreadsheet reads exactly."""

import csv
import io
from collections.abc import Iterator


def _text(value) -> str:
    """Text that a spreadsheet would run as a formula (=, +, -, @) is quoted with a leading
    apostrophe, so a memo like "=HYPERLINK(...)" stays text."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _money(value) -> str:
    return f"{value:.2f}"


def _header(report: dict) -> list[list[str]]:
    span = (
        f"as of {report['as_of']}"
        if "as_of" in report
        else f"{report.get('date_from') or 'start'} to {report['date_to']}"
    )
    dims = ", ".join(f"{k}={v}" for k, v in report.get("dimensions", {}).items() if v is not None)
    title = report["report"].replace("_", " ").capitalize()
    return [[f"{title} {span}" + (f" ({dims})" if dims else "")]]


def csv_rows(report: dict) -> Iterator[list[str]]:
    """The rows of a report from accounting.selectors, header line first."""
    kind = report["report"]
    yield from _header(report)
    if kind == "trial_balance":
        columns = [
            "opening_debit",
            "opening_credit",
            "debit",
            "credit",
            "closing_debit",
            "closing_credit",
        ]
        yield ["code", "name", "type", *columns]
        for row in report["rows"]:
            yield [
                _text(row["code"]),
                _text(row["name"]),
                row["type"],
                *(_money(row[c]) for c in columns),
            ]
        yield ["", "Total", "", *(_money(report["totals"][c]) for c in columns)]
    elif kind == "general_ledger":
        account = report["account"]
        yield ["account", _text(account["code"]), _text(account["name"])]
        yield ["date", "reference", "memo", "source", "debit", "credit", "balance"]
        yield ["", "", "Opening balance", "", "", "", _money(report["opening_balance"])]
        for row in report["rows"]:
            yield [
                row["date"].isoformat(),
                row["reference"],
                _text(row["memo"]),
                _text(row["source"]),
                _money(row["debit"]),
                _money(row["credit"]),
                _money(row["balance"]),
            ]
        yield [
            "",
            "",
            "Closing balance",
            "",
            _money(report["total_debit"]),
            _money(report["total_credit"]),
            _money(report["closing_balance"]),
        ]
    elif kind in ("profit_and_loss", "balance_sheet"):
        yield ["section", "code", "name", "amount"]
        for section in report["sections"]:
            for row in section["rows"]:
                yield [
                    section["title"],
                    _text(row["code"]),
                    _text(row["name"]),
                    _money(row["amount"]),
                ]
            yield [
                section["title"],
                "",
                f"Total {section['title'].lower()}",
                _money(section["total"]),
            ]
        if kind == "profit_and_loss":
            yield ["", "", "Net profit", _money(report["net_profit"])]
        else:
            yield ["Equity", "", "Current year earnings", _money(report["current_year_earnings"])]
            yield [
                "Equity",
                "",
                "Earlier years' earnings not closed",
                _money(report["prior_years_unclosed_earnings"]),
            ]
            yield [
                "",
                "",
                "Total liabilities and equity",
                _money(report["total_liabilities_and_equity"]),
            ]
    else:
        raise ValueError(f"no CSV layout for report {kind!r}")


def csv_text(report: dict) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_rows(report))
    return buffer.getvalue()


def csv_filename(report: dict, company_slug: str) -> str:
    end = report.get("as_of") or report.get("date_to")
    return f"{company_slug}-{report['report'].replace('_', '-')}-{end}.csv"
