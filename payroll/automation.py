"""A period's automation rule: exactly one of

    {"run_on_date": "YYYY-MM-DD"}   due from that date on (a missed day still runs later)
    {"days_before_end": N}          due from N days before the period's last day
    {"cron": "m h dom mon dow"}     due once the expression has fired since the period began,
                                    read in the company's time zone

`automation_rule_validate` gives the admin form, the API serializer and the services one set of
messages. Dates are business dates in the company's time zone (DESIGN §3).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from croniter import CroniterBadCronError, croniter
from django.utils import timezone

from core.errors import ValidationFailed

RULE_KEYS = ("run_on_date", "days_before_end", "cron")
FIELD = "automation_rule"
MAX_DAYS_BEFORE_END = 366


def _fail(message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, fields={FIELD: [message]})


def automation_rule_validate(rule: Any, *, enabled: bool = True) -> dict:
    """Return the rule normalised (run_on_date as an ISO string, days as an int, cron with single
    spaces), or raise ValidationFailed(code, fields={"automation_rule": [...]}).

    An empty rule is allowed only while automation is off."""
    if rule in (None, "", {}):
        if enabled:
            raise _fail(
                "Automation is on but no rule is set: give one of run_on_date, days_before_end "
                "or cron.",
                "automation_rule_missing",
            )
        return {}
    if not isinstance(rule, dict):
        raise _fail(
            'The automation rule must be an object such as {"days_before_end": 3}.',
            "automation_rule_not_object",
        )
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise _fail(
            f"Unknown automation rule key {', '.join(repr(k) for k in unknown)}; use exactly one "
            f"of {', '.join(RULE_KEYS)}.",
            "automation_rule_unknown_key",
        )
    if len(rule) != 1:
        raise _fail(
            f"Give exactly one automation rule, not {len(rule)} ({', '.join(sorted(rule))}).",
            "automation_rule_ambiguous",
        )
    ((key, value),) = rule.items()
    if key == "run_on_date":
        return {key: _valid_date(value).isoformat()}
    if key == "days_before_end":
        return {key: _valid_days(value)}
    return {key: _valid_cron(value)}


def _valid_date(value) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(
        f"run_on_date must be a date written YYYY-MM-DD, not {value!r}.",
        "automation_rule_bad_date",
    )


def _valid_days(value) -> int:
    if isinstance(value, float | Decimal) and not isinstance(value, bool):
        if value != int(value):
            raise _fail(
                f"days_before_end must be a whole number of days, not {value}.",
                "automation_rule_bad_days",
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(
            f"days_before_end must be a whole number of days, not {value!r}.",
            "automation_rule_bad_days",
        )
    try:
        days = int(str(value).strip())
    except ValueError:
        raise _fail(
            f"days_before_end must be a whole number of days, not {value!r}.",
            "automation_rule_bad_days",
        ) from None
    if days < 0:
        raise _fail(
            f"days_before_end cannot be negative ({days}); use 0 for the period's last day.",
            "automation_rule_negative_days",
        )
    if days > MAX_DAYS_BEFORE_END:
        raise _fail(
            f"days_before_end must be at most {MAX_DAYS_BEFORE_END}.", "automation_rule_bad_days"
        )
    return days


def _valid_cron(value) -> str:
    if not isinstance(value, str) or len(value.split()) != 5:
        raise _fail(
            f"cron must have five fields 'minute hour day-of-month month day-of-week', "
            f"not {value!r}.",
            "automation_rule_invalid_cron",
        )
    expression = " ".join(value.split())
    try:
        # beat runs the rule's entry through celery's crontab, and rule_is_due reads it with
        # croniter: both must accept it (celery refuses "L", "7" for Sunday, "?" ...)
        celery_crontab(expression)
        croniter(expression, dt.datetime(2000, 1, 1), day_or=False)  # noqa: DTZ001
    except (CroniterBadCronError, ValueError, KeyError, TypeError) as exc:
        raise _fail(
            f"cron {expression!r} is not a valid expression (as celery beat reads it): "
            f"{str(exc).rstrip('.')}.",
            "automation_rule_invalid_cron",
        ) from None
    return expression


def celery_crontab(expression: str):
    """celery.schedules.crontab of a five-field expression (raises ValueError when beat could
    not build the entry)."""
    from celery.schedules import crontab

    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


# --- when is a period due --------------------------------------------------------------------


def _first_cron_fire(period, expression: str) -> dt.datetime:
    """First firing at or after the period's first day, midnight, company time. Day of month
    and day of week must both match, as in celery's crontab (which fires the beat entry);
    classic cron would fire on either."""
    tz = period.company.tz
    start = dt.datetime.combine(period.start_date, dt.time.min, tzinfo=tz)
    return croniter(expression, start - dt.timedelta(seconds=1), day_or=False).get_next(dt.datetime)


def rule_is_due(period, *, today: dt.date | None = None, now: dt.datetime | None = None) -> bool:
    rule = period.automation_rule or {}
    if len(rule) != 1:
        return False
    if now is None and today is None:
        now = timezone.now()
    if today is None:
        today = timezone.localdate(now, period.company.tz)
    if "run_on_date" in rule:
        try:
            return today >= dt.date.fromisoformat(str(rule["run_on_date"]))
        except ValueError:
            return False
    if "days_before_end" in rule:
        return today >= period.end_date - dt.timedelta(days=int(rule["days_before_end"]))
    if "cron" in rule:
        try:
            fire = _first_cron_fire(period, rule["cron"])
        except (CroniterBadCronError, ValueError, KeyError):
            return False
        if now is not None:
            return now >= fire
        return fire.date() <= today
    return False


def rule_next_run(period, *, now: dt.datetime | None = None):
    """The date (run_on_date, days_before_end) or aware datetime (cron) the rule names."""
    rule = period.automation_rule or {}
    try:
        if "run_on_date" in rule:
            return dt.date.fromisoformat(str(rule["run_on_date"]))
        if "days_before_end" in rule:
            return period.end_date - dt.timedelta(days=int(rule["days_before_end"]))
        if "cron" in rule:
            return _first_cron_fire(period, rule["cron"])
    except (CroniterBadCronError, ValueError, KeyError):
        return None
    return None
