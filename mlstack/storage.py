"""Talk to the S3-compatible object store: ensure the bucket, list what is stored."""

from __future__ import annotations

import logging
import time
from typing import Any

from mlstack.settings import StorageSettings

log = logging.getLogger(__name__)


class StorageUnavailable(RuntimeError):
    """The object store cannot be reached or refuses our credentials."""


def client(settings: StorageSettings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.S3_ENDPOINT_URL,
        aws_access_key_id=settings.S3_ACCESS_KEY_ID.get_secret_value(),
        aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY.get_secret_value(),
        region_name=settings.S3_REGION,
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


def ensure_bucket(settings: StorageSettings, attempts: int = 10, backoff_seconds: float = 1.0) -> bool:
    """Create the bucket if it is missing (idempotent); return True if it was created."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(settings)
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if settings.S3_BUCKET in existing:
                log.info("bucket s3://%s exists at %s", settings.S3_BUCKET, settings.S3_ENDPOINT_URL)
                return False
            s3.create_bucket(Bucket=settings.S3_BUCKET)
            log.info("created bucket s3://%s at %s", settings.S3_BUCKET, settings.S3_ENDPOINT_URL)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise StorageUnavailable(
                    f"S3 at {settings.S3_ENDPOINT_URL} refused the credentials ({code}): "
                    "check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY in .env") from exc
            last = exc
        except BotoCoreError as exc:
            last = exc
        if attempt < attempts:
            time.sleep(backoff_seconds)
    raise StorageUnavailable(f"S3 at {settings.S3_ENDPOINT_URL} is unreachable after {attempts} attempt(s): {last}")


def list_objects(settings: StorageSettings, prefix: str = "") -> list[str]:
    """Return every key in the bucket under `prefix`."""
    s3 = client(settings)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.S3_BUCKET, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
