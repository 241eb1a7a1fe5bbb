"""Payroll's API resources, registered on the one router in config/api_router.py (so the
tenant-isolation and role tests walk them) under /api/v1/payroll/."""

from payroll.api.views import (
    DeductionTypeViewSet,
    EmployeeDeductionViewSet,
    EmployeeEarningViewSet,
    EmployeeViewSet,
    OvertimeRuleViewSet,
    PayRateViewSet,
    PayrollPeriodViewSet,
    PayrollRunViewSet,
    PayScheduleViewSet,
    PayslipViewSet,
    TaxTableViewSet,
    TimeEntryViewSet,
)

ROUTES = [
    ("payroll/employees", EmployeeViewSet, "payroll-employee"),
    ("payroll/employee-deductions", EmployeeDeductionViewSet, "payroll-employee-deduction"),
    ("payroll/employee-earnings", EmployeeEarningViewSet, "payroll-employee-earning"),
    ("payroll/pay-rates", PayRateViewSet, "payroll-pay-rate"),
    ("payroll/time-entries", TimeEntryViewSet, "payroll-time-entry"),
    ("payroll/tax-tables", TaxTableViewSet, "payroll-tax-table"),
    ("payroll/overtime-rules", OvertimeRuleViewSet, "payroll-overtime-rule"),
    ("payroll/deduction-types", DeductionTypeViewSet, "payroll-deduction-type"),
    ("payroll/pay-schedules", PayScheduleViewSet, "payroll-pay-schedule"),
    ("payroll/periods", PayrollPeriodViewSet, "payroll-period"),
    ("payroll/runs", PayrollRunViewSet, "payroll-run"),
    ("payroll/payslips", PayslipViewSet, "payroll-payslip"),
]

urlpatterns: list = []  # every payroll resource is a router resource
