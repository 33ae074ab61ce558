"""A Kubernetes API emulator kopf runs reliably against: :class:`kmock.KubernetesEmulator`
plus the server behaviour kopf relies on.

What it adds to plain kmock 0.8:

* ``metadata.resourceVersion`` (one counter for the whole server, bumped on every change),
  ``uid``, ``creationTimestamp``, ``generation`` (bumped when anything but ``metadata`` and
  ``status`` changes) and ``generateName``;
* list responses carrying the list's ``resourceVersion``, and watches that honour
  ``?resourceVersion=`` (only later events), ``sendInitialEvents`` and ``timeoutSeconds``;
  without them every watch replays all objects as ``ADDED`` and handlers run twice;
* JSON patches (RFC 6902) whose failed ``test`` answers 422, as kopf expects for its
  finalizer patches; merge-patch ``metadata.resourceVersion`` preconditions (409);
* the ``status`` subresource: status patches change only ``status``, main-resource patches
  never change it (for resources that declare the subresource);
* no-op patches that change nothing (no new resourceVersion, no event);
* ``/api/v1/namespaces`` (list, watch, get, create); namespaces are created on first use;
* equality- and set-based label selectors and ``metadata.name``/``metadata.namespace``
  field selectors on lists and watches;
* background garbage collection through ``ownerReferences`` on delete (not ``Orphan``);
* optionally (``ready_deployments``), a Deployment controller's visible effect: after a
  Deployment is created or its spec changes, its status reports every replica updated and
  ready (after ``readiness_delay`` seconds), as a real cluster's would once pods run.

Still not emulated: PUT, server-side apply (415), delete-collection, strategic-merge
semantics (treated as a merge patch: lists are replaced), admission and schema validation.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import string
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import jsonpatch  # a dependency of kmock
import kmock

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
NAMESPACES = kmock.resource("", "v1", "namespaces")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")

_NAMESPACE_PATH = re.compile(
    r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<subresource>status|finalize))?)?/?"
)
_MUTATIONS = frozenset({kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE})
_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp", "generation")

Key = tuple[kmock.resource, str | None, str]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message, details={})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``None`` deletes, the rest
    (lists included) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return value is not None and value in self.values
            case "!=" | "notin":
                return value is None or value not in self.values
            case "exists":
                return value is not None
            case _:
                return value is None


_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*")
_SIMPLE_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(==|=|!=)\s*([^\s,]*))?\s*")


def parse_label_selector(selector: str | None) -> list[_Requirement]:
    """``a=b,c!=d,e,!f,g in (x,y),h notin (z)`` → requirements (all must match)."""
    requirements: list[_Requirement] = []
    rest = (selector or "").strip()
    while rest:
        if match := _SET_REQUIREMENT.match(rest):
            values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
            requirements.append(_Requirement(match[1], match[2], values))
        elif match := _SIMPLE_REQUIREMENT.match(rest):
            negated, key, op, value = match[1], match[2], match[3], match[4]
            if op:
                requirements.append(
                    _Requirement(key, "!=" if op == "!=" else "=", frozenset({value}))
                )
            else:
                requirements.append(_Requirement(key, "!" if negated else "exists"))
        else:
            raise _error(400, "BadRequest", f"unable to parse label selector {selector!r}")
        rest = rest[match.end() :].lstrip()
        if rest.startswith(","):
            rest = rest[1:].lstrip()
        elif rest:
            raise _error(400, "BadRequest", f"unable to parse label selector {selector!r}")
    return requirements


def _field_filters(selector: str | None) -> dict[str, tuple[bool, str]]:
    filters: dict[str, tuple[bool, str]] = {}
    for part in (selector or "").split(","):
        if not part.strip():
            continue
        negated = "!=" in part
        field, _, value = part.partition("!=" if negated else "=")
        value = value.lstrip("=")
        if field.strip() not in {"metadata.name", "metadata.namespace"}:
            raise _error(400, "BadRequest", f"field selector {field!r} is not emulated")
        filters[field.strip()] = (negated, value.strip())
    return filters


@dataclass(frozen=True)
class _Event:
    revision: int
    resource: kmock.resource
    type: str
    object: dict[str, Any]


@attrs.define(kw_only=True)
class KubernetesAPIEmulator(kmock.KubernetesEmulator):
    """A stateful Kubernetes API for kopf. Serve it with ``kmock.Server(emulator)``; the
    built-in resources are declared unless ``builtins=False``; declare custom resources
    with :meth:`declare` (always ``namespaced``, or kopf treats them as cluster-scoped)."""

    builtins: bool = True
    #: Emulate the Deployment controller: rolled-out, ready status after a spec change.
    ready_deployments: bool = False
    readiness_delay: float = 0.0
    _revision: int = attrs.field(default=0, init=False)
    _log: list[kmock.Request] = attrs.field(factory=list, init=False)
    _direct: frozenset[Any] = attrs.field(
        default=frozenset(
            {
                kmock.action.LIST,
                kmock.action.WATCH,
                kmock.action.FETCH,
                kmock.action.CREATE,
                kmock.action.UPDATE,
                kmock.action.DELETE,
            }
        ),
        init=False,
    )
    _events: list[_Event] = attrs.field(factory=list, init=False)
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.builtins:
            with warnings.catch_warnings():  # kmock 0.8 reads its bundle the deprecated way
                warnings.simplefilter("ignore", DeprecationWarning)
                self.resources.load_bundled()

    # --- public helpers -----------------------------------------------------------------

    def declare(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        kind: str,
        namespaced: bool = True,
        shortnames: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        subresources: tuple[str, ...] = ("status",),
    ) -> kmock.resource:
        """Make a (custom) resource discoverable, as installing its CRD would."""
        resource = kmock.resource(group, version, plural)
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=namespaced,
            verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
            shortnames=set(shortnames),
            categories=set(categories),
            subresources=set(subresources),
        )
        return resource

    @property
    def recorded_requests(self) -> list[kmock.Request]:
        """Every request served so far (what an RBAC check reads)."""
        return list(self._log)

    @property
    def revision(self) -> int:
        """The latest resourceVersion handed out."""
        return self._revision

    def peek(self, resource: kmock.resource, namespace: str | None, name: str) -> Any:
        """The stored object itself (no copy: do not modify it), or ``None``."""
        stored = self._stored((resource, namespace, name))
        return None if stored is None or stored.deleted else stored.raw

    def live(self, resource: kmock.resource | str, namespace: str | None, name: str) -> Any:
        """The stored object (a plain dict copy), or ``None`` if absent or deleted."""
        stored = self._stored((kmock.resource(resource), namespace, name))
        if stored is None or stored.deleted:
            return None
        return copy.deepcopy(stored.raw)

    # --- request routing ----------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        # kmock cannot parse these paths (it reads "namespaces" as the namespace segment).
        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        name = match["name"]
        method = raw_request.method.upper()
        watching = raw_request.query.get("watch") in {"true", "1"}
        action = {
            ("GET", False, False): kmock.action.LIST,
            ("GET", False, True): kmock.action.WATCH,
            ("GET", True, False): kmock.action.FETCH,
            ("GET", True, True): kmock.action.WATCH,
            ("POST", False, False): kmock.action.CREATE,
            ("PATCH", True, False): kmock.action.UPDATE,
            ("DELETE", True, False): kmock.action.DELETE,
        }.get((method, name is not None, watching))
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=text,
            action=action,
            resource=NAMESPACES,
            namespace=None,
            name=name,
            subresource=match["subresource"],
        )
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:
            if self._errors:
                self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self._log.append(request)
        # kmock matches every request against its reactions by scanning all the requests
        # served so far (O(n) per request): keep its own list short, ours is complete.
        if len(self._requests) > 64:
            del self._requests[:-16]
        if request.resource is not None and request.action in _MUTATIONS:
            async with self._lock:
                self._mutate(request)
        # Object requests are served directly (same handlers as kmock's fallback reactions,
        # without the scan); the rest (discovery) through kmock's reactions. Not
        # KubernetesEmulator._handle: the state changes above replace its own.
        resource = request.resource
        if request.action in self._direct and resource is not None and resource.plural:
            return await self._respond(request)
        return await kmock.RawHandler._handle(self, request)

    async def _respond(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """Serve an object request directly with aiohttp (kmock's generic rendering inspects
        handler signatures and formats tracebacks on every request: too slow at scale)."""
        try:
            if request.action == kmock.action.WATCH:
                return await self._stream_watch(request)
            handlers: dict[Any, Any] = {
                kmock.action.LIST: self._serve_list,
                kmock.action.FETCH: self._serve_fetch,
                kmock.action.CREATE: self._serve_create,
                kmock.action.UPDATE: self._serve_update,
                kmock.action.DELETE: self._serve_delete,
            }
            handler = handlers[request.action]
            body = await handler(request)
        except kmock.KubernetesError as exc:
            status = {
                "apiVersion": "v1",
                "kind": "Status",
                "status": "Failure",
                "code": exc.status,
                "reason": exc.reason,
                "message": exc.message,
            }
            return aiohttp.web.json_response(status, status=exc.status)
        return aiohttp.web.Response(body=json.dumps(body), content_type="application/json")

    async def _stream_watch(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        raw = request._raw_request
        assert raw is not None
        await response.prepare(raw)
        try:
            async for item in self._serve_watch(request):
                if isinstance(item, dict):
                    await response.write(json.dumps(item).encode("utf-8") + b"\n")
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return response
        await response.write_eof()
        return response

    # --- state changes ------------------------------------------------------------------

    def _mutate(self, request: kmock.Request) -> None:
        resource = request.resource
        assert resource is not None
        if request.action == kmock.action.CREATE:
            self._create(request, resource)
            if self.ready_deployments and resource == DEPLOYMENTS:
                name = (request.data or {}).get("metadata", {}).get("name")
                self._schedule_ready((resource, request.namespace, str(name)))
        elif request.action == kmock.action.UPDATE and request.name is not None:
            key: Key = (resource, request.namespace, request.name)
            before = self._generation(key)
            self._update(request, resource, request.name)
            if (
                self.ready_deployments
                and resource == DEPLOYMENTS
                and before != self._generation(key)
            ):
                self._schedule_ready(key)
        elif request.action == kmock.action.DELETE and request.name is not None:
            orphan = isinstance(request.data, dict) and (
                request.data.get("propagationPolicy") == "Orphan"
            )
            self._delete((resource, request.namespace, request.name), orphan=orphan)

    def _stored(self, key: Key) -> Any:
        """The stored object by its key in O(1) (kmock's own lookups scan every object)."""
        return self._objects._objects.get(key)

    def _generation(self, key: Key) -> Any:
        stored = self._stored(key)
        if stored is None or stored.deleted:
            return None
        return stored.raw.get("metadata", {}).get("generation")

    def _schedule_ready(self, key: Key) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.readiness_delay, self._make_ready, key)

    def _make_ready(self, key: Key) -> None:
        """What the Deployment controller reports once every pod of the spec is ready."""
        stored = self._stored(key)
        if stored is None or stored.deleted:
            return
        new = copy.deepcopy(stored.raw)
        replicas = int((new.get("spec") or {}).get("replicas", 1))
        new["status"] = {
            "observedGeneration": new.get("metadata", {}).get("generation"),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
        if new == stored.raw:
            return
        self._bump(new)
        stored.history.append(new)
        self._record(key[0], "MODIFIED", new)

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo | None:
        # Not .get(): kmock's resources array creates missing entries on lookup.
        return self.resources[resource] if resource in self.resources else None  # noqa: SIM401

    def _bump(self, obj: dict[str, Any]) -> None:
        self._revision += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._revision)

    def _record(self, resource: kmock.resource, event_type: str, obj: dict[str, Any]) -> None:
        self._events.append(_Event(self._revision, resource, event_type, copy.deepcopy(obj)))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _live_object(self, key: Key) -> Any:
        stored = self._stored(key)
        if stored is None or stored.deleted:
            raise _error(404, "NotFound", f"{key[0].plural} {key[2]!r} not found")
        return stored

    def _create(self, request: kmock.Request, resource: kmock.resource) -> None:
        data = request.data
        if not isinstance(data, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        meta = data.setdefault("metadata", {})  # in place: kmock's reply looks it up by name
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _error(422, "Invalid", "metadata.name or metadata.generateName is required")
            alphabet = string.ascii_lowercase + string.digits
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(alphabet) for _ in range(5)
            )
        info = self._info(resource)
        namespaced = (
            info.namespaced
            if info is not None and info.namespaced is not None
            else request.namespace is not None
        )
        namespace = (request.namespace or meta.get("namespace")) if namespaced else None
        if namespaced:
            if not namespace:
                raise _error(422, "Invalid", "a namespaced object needs a namespace")
            meta["namespace"] = namespace
        key: Key = (resource, namespace, meta["name"])
        if key in self.objects and not self.objects[key].deleted:
            raise _error(409, "AlreadyExists", f"{resource.plural} {meta['name']!r} already exists")
        if namespace is not None:
            self._ensure_namespace(namespace)
        for field in ("deletionTimestamp", "resourceVersion"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        self._bump(data)
        stored = copy.deepcopy(data)
        if key in self.objects:
            self.objects[key].create(stored)
        else:
            self.objects[key] = stored
        self._record(resource, "ADDED", stored)

    def _ensure_namespace(self, name: str) -> None:
        key: Key = (NAMESPACES, None, name)
        if key in self.objects and not self.objects[key].deleted:
            return
        namespace: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/metadata.name": name},
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self._bump(namespace)
        if key in self.objects:
            self.objects[key].create(namespace)
        else:
            self.objects[key] = namespace
        self._record(NAMESPACES, "ADDED", namespace)

    def _patched(self, old: dict[str, Any], request: kmock.Request) -> dict[str, Any]:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        data = request.data
        if content_type == "application/apply-patch+yaml":
            raise _error(415, "UnsupportedMediaType", "server-side apply is not emulated")
        if content_type == "application/json-patch+json" or isinstance(data, list):
            try:
                patched = jsonpatch.apply_patch(old, data, in_place=False)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise _error(422, "Invalid", f"the JSON patch test failed: {exc}") from exc
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _error(422, "Invalid", f"the JSON patch cannot be applied: {exc}") from exc
            return dict(patched)
        if not isinstance(data, dict):
            raise _error(400, "BadRequest", "a merge patch must be a JSON object")
        expected = (data.get("metadata") or {}).get("resourceVersion")
        current = old.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != current:
            raise _error(409, "Conflict", "the object has been modified; apply to the latest")
        result = merge_patch(old, data)
        assert isinstance(result, dict)
        return result

    def _update(self, request: kmock.Request, resource: kmock.resource, name: str) -> None:
        key: Key = (resource, request.namespace, name)
        stored = self._live_object(key)
        old: dict[str, Any] = copy.deepcopy(stored.raw)
        patched = self._patched(old, request)
        info = self._info(resource)
        has_status = info is not None and "status" in info.subresources
        if request.subresource == "status":
            new = copy.deepcopy(old)
            if "status" in patched:
                new["status"] = patched["status"]
            else:
                new.pop("status", None)
        else:
            new = patched
            if has_status and request.subresource is None:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        new_meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata", {})
        for field in (*_IMMUTABLE_META, "resourceVersion"):
            if field in old_meta:
                new_meta[field] = old_meta[field]
        if new == old:
            return  # a no-op patch changes nothing, not even the resourceVersion
        if self._content(new) != self._content(old):
            new_meta["generation"] = int(old_meta.get("generation") or 0) + 1
        self._bump(new)
        stored.history.append(new)
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            self._remove(key)
        else:
            self._record(resource, "MODIFIED", new)

    @staticmethod
    def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in {"metadata", "status"}}

    def _delete(self, key: Key, *, orphan: bool = False) -> None:
        stored = self._live_object(key)
        meta = stored.raw.get("metadata", {})
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(stored.raw)
                new["metadata"]["deletionTimestamp"] = _now()
                self._bump(new)
                stored.history.append(new)
                self._record(key[0], "MODIFIED", new)
            return
        self._remove(key, orphan=orphan)

    def _remove(self, key: Key, *, orphan: bool = False) -> None:
        stored = self.objects[key]
        final = copy.deepcopy(stored.raw)
        self._bump(final)
        stored.history.append(final)
        stored.delete()
        self._record(key[0], "DELETED", final)
        uid = final.get("metadata", {}).get("uid")
        if orphan or uid is None:
            return
        for dependant in list(self._owned_by(uid)):
            if not self.objects[dependant].deleted:
                self._delete(dependant)

    def _owned_by(self, uid: str) -> Iterator[Key]:
        for key, obj in self.objects.items():
            if obj.deleted:
                continue
            refs = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                yield key

    # --- reading ------------------------------------------------------------------------

    def _request_key(self, request: kmock.Request) -> Key:
        assert request.resource is not None
        data = request.data if isinstance(request.data, dict) else {}
        meta = data.get("metadata") or {}
        namespace = request.namespace or meta.get("namespace")
        info = self._info(request.resource)
        if info is not None and info.namespaced is False:
            namespace = None
        return (request.resource, namespace, str(request.name or meta.get("name")))

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        stored = self._stored(self._request_key(request))
        if stored is None or stored.deleted:
            raise _error(404, "NotFound", "the object is not found")
        return stored.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        return self._live_object(self._request_key(request)).raw

    async def _serve_update(self, request: kmock.Request) -> Any:
        stored = self._stored(self._request_key(request))
        assert stored is not None
        return stored.last.raw

    async def _serve_delete(self, request: kmock.Request) -> Any:
        stored = self._stored(self._request_key(request))
        assert stored is not None
        return stored.last.raw

    def _known(self, request: kmock.Request) -> kmock.resource:
        resource = request.resource
        if resource is None or resource not in self._get_resources():
            raise _error(404, "NotFound", "the server could not find the requested resource")
        return resource

    def _matcher(self, request: kmock.Request) -> Any:
        labels = parse_label_selector(request.params.get("labelSelector"))
        fields = _field_filters(request.params.get("fieldSelector"))
        namespace, name = request.namespace, request.name

        def matches(resource: kmock.resource, obj: Mapping[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            if resource != request.resource:
                return False
            if namespace is not None and meta.get("namespace") != namespace:
                return False
            if name is not None and meta.get("name") != name:
                return False
            for field, (negated, value) in fields.items():
                actual = meta.get(field.split(".", 1)[1])
                if (actual == value) == negated:
                    return False
            object_labels = meta.get("labels") or {}
            return all(requirement.matches(object_labels) for requirement in labels)

        return matches

    def _list_kind(self, resource: kmock.resource) -> tuple[str, str]:
        info = self._info(resource)
        kind = info.kind if info is not None and info.kind else str(resource.plural).capitalize()
        api_version = f"{resource.group}/{resource.version}" if resource.group else "v1"
        return api_version, kind

    async def _serve_list(self, request: kmock.Request) -> Any:
        resource = self._known(request)
        matches = self._matcher(request)
        async with self._lock:
            items = [
                copy.deepcopy(obj.raw)
                for (res, _, _), obj in self.objects.items()
                if not obj.deleted and matches(res, obj.raw)
            ]
            revision = self._revision
        api_version, kind = self._list_kind(resource)
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if nothing happens for a while
        resource = self._known(request)
        matches = self._matcher(request)
        params = request.params
        loop = asyncio.get_running_loop()
        timeout = params.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None
        since = params.get("resourceVersion")
        initial = params.get("sendInitialEvents") == "true"

        if initial or not since or since == "0":
            async with self._lock:
                position = len(self._events)
                snapshot = [
                    copy.deepcopy(obj.raw)
                    for (res, _, _), obj in self.objects.items()
                    if not obj.deleted and matches(res, obj.raw)
                ]
                revision = self._revision
            for obj in snapshot:
                yield {"type": "ADDED", "object": obj}
            if initial:
                api_version, kind = self._list_kind(resource)
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "apiVersion": api_version,
                        "kind": kind,
                        "metadata": {
                            "resourceVersion": str(revision),
                            "annotations": {INITIAL_EVENTS_END: "true"},
                        },
                    },
                }
        else:
            position = next(
                (i for i, e in enumerate(self._events) if e.revision > int(since)),
                len(self._events),
            )

        while True:
            while position < len(self._events):
                event = self._events[position]
                position += 1
                if matches(event.resource, event.object):
                    # Recorded events are snapshots nobody mutates: no copy per watcher.
                    yield {"type": event.type, "object": event.object}
            changed = self._changed
            if position < len(self._events):
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return


def declare_agentfleet_resources(emulator: KubernetesAPIEmulator) -> None:
    """Declare agentfleet's custom resources, as installing the CRDs does."""
    from agentfleet_crds.v1alpha1 import GROUP, RESOURCES, VERSION

    for model in RESOURCES:
        emulator.declare(
            GROUP,
            VERSION,
            model.PLURAL,
            kind=model.KIND,
            shortnames=model.SHORT_NAMES,
            categories=model.CATEGORIES,
        )
