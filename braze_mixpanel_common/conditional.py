"""Compare-and-swap on single objects: the conditional writes each storage backend offers.

A lease and an atomically published file need three guarantees from the storage: *create only if
absent*, *replace only if unchanged since read*, *delete only if unchanged since read*. Each
backend has them under another name, all reached through the fsspec filesystem's own client:

* S3: ``If-None-Match: *`` / ``If-Match: <etag>`` on PutObject and DeleteObject;
* GCS: ``ifGenerationMatch`` (0 = absent) on uploads and deletes;
* Azure Blob: ``If-None-Match: *`` / ``If-Match: <etag>`` (``overwrite=False``, ``etag`` +
  ``match_condition``);
* local disk (plain paths, ``file://``): an exclusive ``flock`` on a ``.lock`` file beside the
  object, with writes through a temporary file and ``os.replace``.

Every object read or written carries a *token* (ETag, generation, or a local stamp); a
conditional call returns the new token, or None when the condition failed.

Only a genuine precondition failure (HTTP 412, S3's 409 ``ConditionalRequestConflict``, GCS's
412, Azure's ``ConditionNotMet`` / ``BlobAlreadyExists``) counts as "the condition failed". A
missing bucket or container, a refused permission or any other error raises
:class:`StorageError` with one line naming the URL and the problem. A write whose reply was lost
is retried by the storage client; when the retry meets a failed condition the object is read back,
and when it holds exactly the bytes this call wrote, the write was ours and succeeds (callers make
every payload unique: a lease names its holder and expiry, a published ledger its publish id).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fsspec.asyn import sync

from braze_mixpanel_common.errors import ConfigurationError, DestinationError
from braze_mixpanel_common.storage import is_local

_CHUNK = 1 << 20
S3_MAX_SINGLE_PUT = 5 * 1024**3
"""S3's limit for one PutObject; beyond it only a multipart upload works, which drops the
create-only condition on some S3-compatible stores, so larger objects are refused."""

S3_PERMISSIONS = (
    "s3:GetObject, s3:PutObject and s3:DeleteObject on the objects, and s3:ListBucket on the "
    "bucket (without s3:ListBucket, S3 answers 403 instead of 404 for an object that does not "
    "exist yet)"
)
GCS_PERMISSIONS = (
    "storage.objects.get, storage.objects.create and storage.objects.delete on the bucket (role "
    "roles/storage.objectUser)"
)
AZURE_PERMISSIONS = (
    "read, write and delete on the container's blobs (role Storage Blob Data Contributor)"
)


class StorageError(DestinationError):
    """The storage refused an operation for a reason other than a failed condition."""


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the token of that exact version."""

    data: bytes
    token: str


class ConditionalStore(ABC):
    """Conditional reads and writes of single objects on one filesystem.

    Args:
        fs: the fsspec filesystem (from :func:`braze_mixpanel_common.storage.open_url`).
    """

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def display(self, path: str) -> str:
        """``path`` as the user writes it (with its protocol), for messages."""
        return str(self.fs.unstrip_protocol(path))

    @abstractmethod
    def read(self, path: str) -> Versioned | None:
        """The object and its token, or None when it does not exist."""

    @abstractmethod
    def download(self, path: str, local: Path) -> str | None:
        """Copy the object to ``local``; its token, or None (``local`` untouched) when absent."""

    @abstractmethod
    def write(self, path: str, data: bytes | Path, token: str | None) -> str | None:
        """Write ``data`` (bytes, or a local file's content) if the object is still ``token``.

        ``token=None`` means "only if the object does not exist". Returns the new token, or None
        when the condition failed (the object exists, changed, or vanished).
        """

    @abstractmethod
    def delete(self, path: str, token: str) -> bool:
        """Delete the object if it is still ``token``; False when it changed or is gone."""


def conditional_store(fs: Any) -> ConditionalStore:
    """The store for ``fs``'s backend.

    Raises:
        ConfigurationError: the backend offers no conditional writes this module knows.
    """
    names = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if is_local(fs):
        return LocalStore(fs)
    if names & {"s3", "s3a"}:
        return S3Store(fs)
    if names & {"gs", "gcs"}:
        return GCSStore(fs)
    if names & {"az", "abfs", "abfss"}:
        return AzureStore(fs)
    raise ConfigurationError(
        f"Storage protocol {sorted(names)[0]!r} has no conditional writes that a lease can rely "
        "on: use s3://, gs://, az:// (abfs://), file:// or a local path."
    )


def _payload(data: bytes | Path) -> bytes:
    return data.read_bytes() if isinstance(data, Path) else data


class _AsyncStore(ConditionalStore):
    """A backend reached through an async fsspec filesystem: the sync calls run on its loop.

    Subclasses implement ``_get`` (bytes or a download to ``local``, with the token), ``_put``
    and ``_delete``.
    """

    def _split(self, path: str) -> tuple[str, str]:
        """The bucket (or container) and the key of ``path``."""
        bucket, key, _ = self.fs.split_path(path)
        return bucket, key

    @abstractmethod
    async def _get(self, path: str, local: Path | None) -> tuple[bytes, str] | None:
        """The object (or a download to ``local``) and its token; None when absent."""

    @abstractmethod
    async def _put(self, path: str, data: bytes, token: str | None) -> str | None:
        """The conditional write; the new token, or None when the condition failed."""

    @abstractmethod
    async def _delete(self, path: str, token: str) -> bool:
        """The conditional delete; False when the condition failed."""

    def read(self, path: str) -> Versioned | None:
        found = sync(self.fs.loop, self._get, path, None)
        return None if found is None else Versioned(found[0], found[1])

    def download(self, path: str, local: Path) -> str | None:
        found = sync(self.fs.loop, self._get, path, local)
        return None if found is None else found[1]

    def write(self, path: str, data: bytes | Path, token: str | None) -> str | None:
        payload = _payload(data)
        result = sync(self.fs.loop, self._put, path, payload, token)
        self.fs.invalidate_cache(path)
        if result is None:
            # A retried write whose first attempt succeeded (its reply was lost) meets its own
            # object: the same bytes mean the write was ours.
            found = self.read(path)
            if found is not None and found.data == payload:
                return found.token
        return result

    def delete(self, path: str, token: str) -> bool:
        result = sync(self.fs.loop, self._delete, path, token)
        self.fs.invalidate_cache(path)
        return result


# -- local disk --------------------------------------------------------------------------------


class LocalStore(ConditionalStore):
    """Local files: each operation holds an exclusive ``flock`` on ``<path>.lock``."""

    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _token(path: str) -> str | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def read(self, path: str) -> Versioned | None:  # noqa: D102
        with self._locked(path):
            token = self._token(path)
            if token is None:
                return None
            return Versioned(Path(path).read_bytes(), token)

    def download(self, path: str, local: Path) -> str | None:  # noqa: D102
        with self._locked(path):
            token = self._token(path)
            if token is not None:
                with open(path, "rb") as src, open(local, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
            return token

    def write(self, path: str, data: bytes | Path, token: str | None) -> str | None:  # noqa: D102
        with self._locked(path):
            if self._token(path) != token:
                return None
            folder = Path(path).parent
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{Path(path).name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(data, Path):
                        with open(data, "rb") as src:
                            while chunk := src.read(_CHUNK):
                                out.write(chunk)
                    else:
                        out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return self._token(path)

    def delete(self, path: str, token: str) -> bool:  # noqa: D102
        with self._locked(path):
            if self._token(path) != token:
                return False
            os.unlink(path)
            return True


# -- S3 ----------------------------------------------------------------------------------------


def _s3_answer(exc: BaseException) -> tuple[str, int | None] | None:
    """S3's error code and HTTP status behind an s3fs error; None for a non-HTTP failure."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            return code, response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        seen = seen.__cause__ or seen.__context__
    return None


def _s3_condition_failed(exc: BaseException) -> bool:
    """True when an s3fs error is S3's answer to a failed condition (412, or 409 for a race)."""
    answer = _s3_answer(exc)
    if answer is None:
        return isinstance(exc, FileExistsError)
    code, status = answer
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class S3Store(_AsyncStore):
    """S3 through s3fs's client: ETags with ``If-Match`` / ``If-None-Match``.

    Every write is one PutObject (never a multipart upload, whose conditions not every
    S3-compatible store honours); objects over 5 GiB are refused.
    """

    def _failure(self, exc: BaseException, path: str, what: str) -> BaseException:
        """A :class:`StorageError` naming a missing bucket or permission; else ``exc`` itself."""
        code, status = _s3_answer(exc) or ("", None)
        if code == "NoSuchBucket":
            problem = "the bucket does not exist"
        elif status == 403 or isinstance(exc, PermissionError):
            problem = f"access denied ({code or 403}) to {what} it; the role needs {S3_PERMISSIONS}"
        else:
            return exc  # the caller's message names it (secrets redacted)
        return StorageError(f"{self.display(path)}: {problem}.")

    async def _get(self, path: str, local: Path | None) -> tuple[bytes, str] | None:
        bucket, key = self._split(path)
        try:
            response = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
        except FileNotFoundError as exc:
            if (_s3_answer(exc) or ("",))[0] == "NoSuchBucket":
                raise self._failure(exc, path, "read") from None
            return None
        except OSError as exc:
            raise self._failure(exc, path, "read") from None
        body = response["Body"]
        chunks: list[bytes] = []
        try:
            if local is None:
                chunks.append(await body.read())
            else:
                with open(local, "wb") as out:
                    while chunk := await body.read(_CHUNK):
                        out.write(chunk)
        finally:
            body.close()
        return b"".join(chunks), str(response["ETag"])

    async def _put(self, path: str, data: bytes, token: str | None) -> str | None:
        bucket, key = self._split(path)
        if len(data) > S3_MAX_SINGLE_PUT:
            raise StorageError(
                f"{self.display(path)}: {len(data) / 1024**3:.1f} GiB is over S3's 5 GiB limit "
                "for one conditional write; a multipart upload would not keep the create-only "
                "guarantee, so it is not attempted."
            )
        condition = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
        try:
            response = await self.fs._call_s3(
                "put_object", Bucket=bucket, Key=key, Body=data, **condition
            )
        except OSError as exc:
            if _s3_condition_failed(exc):
                return None
            if token is not None and (_s3_answer(exc) or ("",))[0] == "NoSuchKey":
                return None  # the object to replace is gone: that condition failed too
            raise self._failure(exc, path, "write") from None
        return str(response["ETag"])

    async def _delete(self, path: str, token: str) -> bool:
        bucket, key = self._split(path)
        try:
            await self.fs._call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=token)
        except FileNotFoundError as exc:
            if (_s3_answer(exc) or ("",))[0] == "NoSuchBucket":
                raise self._failure(exc, path, "delete") from None
            return False  # already gone
        except OSError as exc:
            if _s3_condition_failed(exc):
                return False
            raise self._failure(exc, path, "delete") from None
        return True


# -- GCS ---------------------------------------------------------------------------------------


class GCSStore(_AsyncStore):
    """Google Cloud Storage through gcsfs's client: object generations and ``ifGenerationMatch``.

    Uploads use GCS's media upload, which stores the body byte for byte in one request, so the
    ``ifGenerationMatch`` condition holds whatever the size.
    """

    def _failure(self, exc: BaseException, path: str, problem: str | None = None) -> BaseException:
        """A :class:`StorageError` naming a missing bucket or permission; else ``exc`` itself."""
        if problem is None:
            if str(exc).startswith("Forbidden") or isinstance(exc, PermissionError):
                problem = f"access denied; the service account needs {GCS_PERMISSIONS}"
            else:
                return exc  # the caller's message names it (secrets redacted)
        return StorageError(f"{self.display(path)}: {problem}.")

    async def _get(self, path: str, local: Path | None) -> tuple[bytes, str] | None:
        bucket, key = self._split(path)
        try:
            meta = await self.fs._call("GET", "b/{}/o/{}", bucket, key, json_out=True)
            generation = str(meta["generation"])
            _, data = await self.fs._call(
                "GET", self.fs.url(f"{bucket}/{key}"), alt="media", generation=generation
            )
        except FileNotFoundError:
            return None  # (a missing bucket is named by the first write)
        except OSError as exc:
            raise self._failure(exc, path) from None
        if local is not None:
            local.write_bytes(data)
        return bytes(data), generation

    async def _put(self, path: str, data: bytes, token: str | None) -> str | None:
        bucket, key = self._split(path)
        try:
            answer = await self.fs._call(
                "POST",
                f"{self.fs._location}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
                uploadType="media",
                name=key,
                ifGenerationMatch=token or "0",
                headers={"Content-Type": "application/octet-stream"},
                data=data,
                json_out=True,
            )
        except FileExistsError:  # gcsfs maps 412 to FileExistsError
            return None
        except FileNotFoundError as exc:  # an upload only 404s when the bucket is missing
            raise self._failure(exc, path, "the bucket does not exist") from None
        except OSError as exc:
            raise self._failure(exc, path) from None
        return str(answer["generation"])

    async def _delete(self, path: str, token: str) -> bool:
        bucket, key = self._split(path)
        try:
            await self.fs._call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=token)
        except (FileExistsError, FileNotFoundError):
            return False
        except OSError as exc:
            raise self._failure(exc, path) from None
        return True


# -- Azure Blob --------------------------------------------------------------------------------


class AzureStore(_AsyncStore):
    """Azure Blob Storage through adlfs's client: ETags with ``If-Match`` / ``If-None-Match``.

    A large body is uploaded as blocks and committed with one Put Block List that carries the
    condition, so the create-only guarantee holds whatever the size.
    """

    def _blob(self, path: str) -> Any:
        return self.fs.service_client.get_blob_client(*self._split(path))

    def _failure(self, exc: BaseException, path: str) -> BaseException:
        """A :class:`StorageError` naming a missing container or permission; else ``exc``."""
        code = str(getattr(exc, "error_code", "") or "")
        status = getattr(exc, "status_code", None)
        if code == "ContainerNotFound":
            problem = "the container does not exist"
        elif status == 403 or "AuthorizationPermissionMismatch" in code:
            problem = f"access denied ({code or 403}); the identity needs {AZURE_PERMISSIONS}"
        else:
            return exc  # the caller's message names it (secrets redacted)
        return StorageError(f"{self.display(path)}: {problem}.")

    async def _get(self, path: str, local: Path | None) -> tuple[bytes, str] | None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            stream = await self._blob(path).download_blob()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise self._failure(exc, path) from None
            return None
        except HttpResponseError as exc:
            raise self._failure(exc, path) from None
        if local is None:
            return bytes(await stream.readall()), str(stream.properties.etag)
        with open(local, "wb") as out:
            async for chunk in stream.chunks():
                out.write(chunk)
        return b"", str(stream.properties.etag)

    async def _put(self, path: str, data: bytes, token: str | None) -> str | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        condition: dict[str, Any] = (
            {"overwrite": False}
            if token is None
            else {
                "overwrite": True,
                "etag": token,
                "match_condition": MatchConditions.IfNotModified,
            }
        )
        try:
            answer = await self._blob(path).upload_blob(data, **condition)
        except (ResourceExistsError, ResourceModifiedError):
            return None
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise self._failure(exc, path) from None
            return None  # the blob to replace is gone
        except HttpResponseError as exc:
            raise self._failure(exc, path) from None
        return str(answer["etag"])

    async def _delete(self, path: str, token: str) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        try:
            await self._blob(path).delete_blob(
                etag=token, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except HttpResponseError as exc:
            raise self._failure(exc, path) from None
        return True
