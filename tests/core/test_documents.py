import boto3
import pytest
from django.core.files.storage import storages
from moto import mock_aws

from core import documents


@pytest.mark.django_db
def test_documents_go_to_the_filesystem_by_default(tenants, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    name = documents.document_store(
        company=tenants.a,
        category="payslips",
        filename="../../etc/passwd 2026-07.pdf",
        content=b"%PDF-1.7",
    )
    assert name.startswith("companies/alpha/payslips/")
    assert ".." not in name and " " not in name
    assert (tmp_path / name).read_bytes() == b"%PDF-1.7"
    assert documents.document_read(name) == b"%PDF-1.7"
    assert documents.document_belongs_to(name, tenants.a)
    assert not documents.document_belongs_to(name, tenants.b)


@pytest.mark.django_db
def test_documents_go_to_s3_compatible_storage_when_configured(tenants, settings):
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="kontor-docs")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "kontor-docs",
                    "region_name": "us-east-1",
                    "access_key": "test",
                    "secret_key": "test",
                    "location": "documents",
                    "default_acl": None,
                    "file_overwrite": False,
                },
            },
        }
        storages._storages = {}  # the storage handler caches the old backend
        try:
            name = documents.document_store(
                company=tenants.a,
                category="statements",
                filename="march.xml",
                content=b"<Document/>",
            )
            body = (
                boto3.client("s3", region_name="us-east-1")
                .get_object(Bucket="kontor-docs", Key=f"documents/{name}")["Body"]
                .read()
            )
            assert body == b"<Document/>"
            assert documents.document_read(name) == b"<Document/>"
        finally:
            storages._storages = {}


def test_base_settings_pick_s3_from_the_environment(monkeypatch):
    import importlib

    import config.settings.base as base

    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "books")
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "https://minio.internal:9000")
    try:
        reloaded = importlib.reload(base)
        assert reloaded.STORAGES["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
        assert (
            reloaded.STORAGES["default"]["OPTIONS"]["endpoint_url"] == "https://minio.internal:9000"
        )
    finally:
        monkeypatch.delenv("AWS_STORAGE_BUCKET_NAME")
        monkeypatch.delenv("AWS_S3_ENDPOINT_URL")
        importlib.reload(base)
