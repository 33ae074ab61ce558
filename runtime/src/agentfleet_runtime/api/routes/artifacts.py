"""Artifacts over the API: a session's attachments (upload) and transcript export, and
``/api/v1/artifacts/{id}`` (download, ``HEAD`` for the metadata, delete). Every lookup is
scoped to the caller's tenant: another tenant's artifact is "not found"."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import UploadFile

from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Invoker, Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.artifacts.base import ArtifactKind, ArtifactMeta
from agentfleet_runtime.artifacts.errors import ArtifactTooLargeError
from agentfleet_runtime.artifacts.refs import ArtifactRef, artifact_ref
from agentfleet_runtime.artifacts.service import ArtifactService
from agentfleet_runtime.artifacts.transcripts import TRANSCRIPT_TYPE, transcript_json
from agentfleet_runtime.errors import InvalidRequestError

router = APIRouter(tags=["artifacts"])

_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$")
_MULTIPART = "multipart/form-data"
#: Room for a multipart body's boundaries and part headers beyond the file itself.
_MULTIPART_OVERHEAD = 16 * 1024
_STORE_ERRORS = problem_responses(404, 413, 422, 502, 503, 507)


def _artifacts(request: Request) -> ArtifactService:
    artifacts: ArtifactService = request.app.state.artifacts
    return artifacts


def _safe_name(name: str | None) -> str | None:
    """A file name as metadata: no directories, no control characters, 255 at most."""
    if not name:
        return None
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(c for c in base if c.isprintable())[:255].strip()
    return cleaned or None


def _headers(meta: ArtifactMeta) -> dict[str, str]:
    name = (meta.name or meta.id).replace('"', "").replace("\\", "")
    ascii_name = name.encode("ascii", "replace").decode()
    disposition = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:  # RFC 6266: the UTF-8 name for clients that read it
        disposition += f"; filename*=UTF-8''{quote(name, safe='')}"
    headers = {
        "Content-Type": meta.content_type,
        # A download, never a page of this origin: stored HTML must not run here.
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "X-Artifact-Kind": meta.kind.value,
        "Last-Modified": meta.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    if meta.sha256:
        headers["ETag"] = f'"{meta.sha256}"'
    if meta.expires_at is not None:
        headers["X-Artifact-Expires"] = meta.expires_at.isoformat()
    return headers


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ArtifactTooLargeError(
            f"the upload is {declared} bytes; at most {limit} are accepted", limit=limit
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ArtifactTooLargeError(f"the upload exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request: Request, limit: int, name: str | None) -> tuple[bytes, str, str | None]:
    """(bytes, content type, file name) of a raw or ``multipart/form-data`` upload."""
    content_type = request.headers.get("content-type", "application/octet-stream")
    if not content_type.lower().startswith(_MULTIPART):
        if not _MEDIA_TYPE.match(content_type):
            raise InvalidRequestError(f"not a media type: {content_type!r}")
        return await _read_limited(request, limit), content_type, _safe_name(name)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise ArtifactTooLargeError(
            f"the upload is {declared} bytes; at most {limit} are accepted", limit=limit
        )
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("a multipart upload needs one file in the field `file`")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ArtifactTooLargeError(f"the upload exceeds {limit} bytes", limit=limit)
        part_type = upload.content_type or "application/octet-stream"
        return data, part_type, _safe_name(name or upload.filename)


@router.post(
    "/sessions/{session_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    summary="Upload an attachment to a session",
    description="The body is the file (its `Content-Type` is the attachment's; `name` names "
    "it), or `multipart/form-data` with the file in the field `file`. Up to "
    "`AGENTFLEET_ARTIFACTS__MAX_UPLOAD_BYTES` (413 `artifact-too-large`); 507 "
    "`artifact-quota-exceeded` when the tenant's artifact quota is used up; 503 "
    "`artifact-store-unavailable` (with `Retry-After`) when the store fails. Send its id "
    "in a message's `attachments` to give it to the model.",
    responses=_STORE_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "<the file's bytes>",
                },
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "Meeting notes: ship the artifact store on Friday.",
                },
                _MULTIPART: {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    },
                    "example": {"file": "<notes.txt>"},
                },
            },
        }
    },
)
async def upload_attachment(
    session_id: str,
    request: Request,
    service: Service,
    caller: Invoker,
    name: Annotated[
        str | None, Query(max_length=255, description="The file name (raw uploads)")
    ] = None,
) -> ArtifactRef:
    await service.get_session(session_id, tenant=caller.tenant)
    artifacts = _artifacts(request)
    limit = artifacts.settings.max_upload_bytes
    data, content_type, filename = await _upload(request, limit, name)
    meta = await artifacts.put(
        caller.tenant,
        data,
        kind=ArtifactKind.ATTACHMENT,
        content_type=content_type,
        session_id=session_id,
        name=filename,
        max_size=limit,
    )
    audit(
        request,
        caller,
        "artifact.created",
        subject_type="artifact",
        subject=meta.id,
        kind=meta.kind.value,
        size=meta.size,
        session_id=session_id,
    )
    return artifact_ref(meta)


@router.post(
    "/sessions/{session_id}/export",
    status_code=status.HTTP_201_CREATED,
    summary="Export the session's transcript as an artifact",
    description="Stores the session's record, messages and events as one JSON document "
    "(`format: agentfleet.transcript/v1`) and returns its reference; download it from "
    "`url`. Kept for `AGENTFLEET_ARTIFACTS__RETENTION_DAYS__TRANSCRIPT` days.",
    responses=_STORE_ERRORS,
)
async def export_session(
    session_id: str, request: Request, service: Service, caller: Invoker
) -> ArtifactRef:
    record = await service.get_session(session_id, tenant=caller.tenant)
    document = transcript_json(
        record.model_dump(mode="json"),
        await service.messages(session_id),
        await service.events(session_id),
    )
    meta = await _artifacts(request).put(
        caller.tenant,
        document,
        kind=ArtifactKind.TRANSCRIPT,
        content_type=TRANSCRIPT_TYPE,
        session_id=session_id,
        name=f"{session_id}.json",
    )
    audit(
        request,
        caller,
        "session.exported",
        subject_type="session",
        subject=session_id,
        artifact=meta.id,
        size=meta.size,
    )
    return artifact_ref(meta)


@router.get(
    "/artifacts/{artifact_id}",
    summary="Download an artifact",
    description="The artifact's bytes with its `Content-Type`, as a download "
    "(`Content-Disposition: attachment`); `ETag` is its SHA-256. 404 for an unknown, "
    "expired or another tenant's artifact.",
    response_class=Response,
    responses={
        200: {"description": "The artifact", "content": {"application/octet-stream": {}}},
        **problem_responses(404, 502, 503),
    },
)
async def download_artifact(artifact_id: str, request: Request, caller: Reader) -> Response:
    meta, data = await _artifacts(request).get(caller.tenant, artifact_id)
    return Response(content=data, headers=_headers(meta))


@router.head(
    "/artifacts/{artifact_id}",
    summary="An artifact's metadata, as headers",
    description="What `GET` would answer, without the body: `Content-Type`, "
    "`Content-Length`, `ETag`, `X-Artifact-Kind`, `X-Artifact-Expires`.",
    response_class=Response,
    responses=problem_responses(404, 502, 503),
)
async def head_artifact(artifact_id: str, request: Request, caller: Reader) -> Response:
    meta = await _artifacts(request).head(caller.tenant, artifact_id)
    headers = _headers(meta)
    headers["Content-Length"] = str(meta.size)
    return Response(headers=headers)


@router.delete(
    "/artifacts/{artifact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an artifact",
    description="Deletes the artifact of the caller's tenant now (before its retention "
    "ends). 404 for an unknown, expired or another tenant's artifact.",
    responses=problem_responses(404, 502, 503),
)
async def delete_artifact(artifact_id: str, request: Request, caller: Invoker) -> None:
    await _artifacts(request).delete(caller.tenant, artifact_id)
    audit(request, caller, "artifact.deleted", subject_type="artifact", subject=artifact_id)
