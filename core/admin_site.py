from django.contrib import admin

# The admin's left-hand grouping: one block per Kontor module, framework apps folded in.
MODULES = [
    ("Company & access", ["core", "auth"]),
    ("Accounting", ["accounting"]),
    ("Payroll", ["payroll"]),
    ("Invoicing", ["invoicing"]),
    ("Banking", ["banking"]),
    ("Operations", ["django_celery_beat", "token_blacklist"]),
]


class KontorAdminSite(admin.AdminSite):
    site_header = "Kontor"
    site_title = "Kontor back office"
    index_title = "Dashboard"
    index_template = "admin/kontor_dashboard.html"

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label:
            return app_list
        by_label = {app["app_label"]: app for app in app_list}
        grouped = []
        for title, labels in MODULES:
            members = [by_label.pop(label) for label in labels if label in by_label]
            if members:
                models = [model for app in members for model in app["models"]]
                grouped.append({**members[0], "name": title, "models": models})
        return grouped + list(by_label.values())

    def index(self, request, extra_context=None):
        from core.dashboard import dashboard_panels

        context = {"panels": dashboard_panels(request), **(extra_context or {})}
        return super().index(request, context)
