"""Concurrent writers through the API on PostgreSQL (skipped on SQLite, required under CI):
a stale writer gets 409 and nothing is lost; two tellers paying the same invoice at once never
take more than is due."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from invoicing.models import Invoice, InvoiceEvent, InvoicePayment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

INVOICES = "/api/v1/invoicing/invoices/"


def _race(user, company, requests):
    """Send the requests from as many threads at once; return the responses in order."""
    barrier = threading.Barrier(len(requests))
    answers = [None] * len(requests)

    def send(index, method, path, body):
        client = APIClient()
        client.force_authenticate(user)
        client.credentials(HTTP_X_COMPANY=company.slug)
        try:
            barrier.wait(timeout=10)
            answers[index] = getattr(client, method)(path, body, format="json")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=send, args=(index, *request))
        for index, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_two_editors_of_the_same_version_one_wins_one_gets_409(sales):
    draft = sales.draft()
    path = f"{INVOICES}{draft.pk}/"
    answers = _race(
        sales.clerk,
        sales.company,
        [
            ("patch", path, {"notes": "from Rahim", "version": 1}),
            ("patch", path, {"notes": "from Karim", "version": 1}),
        ],
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200, 409]
    lost = next(a for a in answers if a.status_code == 409)
    assert lost.json()["code"] == "stale_version"
    won = next(a for a in answers if a.status_code == 200).json()
    assert InvoiceEvent.objects.filter(stream_id=draft.stream_id).count() == 2
    invoice = Invoice.objects.get(pk=draft.pk)
    assert (invoice.version, invoice.notes) == (2, won["notes"])


def test_two_payments_at_once_never_take_more_than_is_due(sales):
    """115.00 due; two tellers record 80.00 each at the same moment, each having read version
    2: each alone is fine, both would overpay. One is recorded, the other answers 409."""
    invoice = sales.approved()  # 100.00 + 15.00 VAT
    path = f"{INVOICES}{invoice.pk}/payments/"
    answers = _race(
        sales.clerk,
        sales.company,
        [
            ("post", path, {"amount": "80.00", "date": "2025-08-20", "version": 2}),
            ("post", path, {"amount": "80.00", "date": "2025-08-20", "version": 2}),
        ],
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "stale_version"
    assert InvoicePayment.objects.filter(invoice=invoice).count() == 1
    invoice.refresh_from_db()
    assert (invoice.status, str(invoice.amount_due)) == ("partially_paid", "35.00")
