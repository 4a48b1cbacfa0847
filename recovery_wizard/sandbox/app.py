"""The sandbox's Neon API v2 as a Starlette app: Neon's paths, bodies, statuses, pagination and error body.

Only HTTP lives here (auth, parsing, pagination, JSON); what each call does is in ``engine.py``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox import serialize
from recovery_wizard.sandbox.bodies import json_body
from recovery_wizard.sandbox.engine import ApiError, Branch, Endpoint, Engine, Project, parse_time
from recovery_wizard.sandbox.faults import Fault, FaultMiddleware
from recovery_wizard.sandbox.snapshots import SnapshotApi

Handler = Callable[[Request], Awaitable[Response]]


# Path segments Neon serves as literal routes beside an id in the same place (``/projects/shared`` beside
# ``/projects/{project_id}``, ``/branches/count`` beside ``/branches/{branch_id}``…). An id parameter never
# matches one of them, so a literal path can never fall through to the parameterised route: it is either
# served by its own route or answered as an unknown route. tests/sandbox/test_routes.py walks the spec's
# paths to prove it.
LITERAL_SEGMENTS = ("shared", "auth", "count")


class NeonIdConvertor(Convertor[str]):
    """A path segment that is an id: anything but a literal segment of Neon's paths."""

    regex = "(?!(?:" + "|".join(LITERAL_SEGMENTS) + ")(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("neon_id", NeonIdConvertor())


def _error(status: int, message: str, request_id: str, code: str = "") -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "request_id": request_id},
        status,
        headers={"X-Request-ID": request_id},
    )


def _query_int(request: Request, name: str, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer between {low} and {high}")
    return int(raw)


def _query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false")
    return raw == "true"


def _query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    return parse_time(raw, name) if raw else None


def _string(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{where}.{key} must be a non-empty string")
    return value


def _annotation(branch_id: str, value: dict[str, str]) -> dict[str, Any]:
    """``AnnotationData`` as Neon returns it for a branch."""
    return {"object": {"type": "console/branch", "id": branch_id}, "value": dict(value)}


class SandboxApi:
    """Routes bound to one engine and one API key."""

    def __init__(self, engine: Engine, api_key: Secret) -> None:
        self.engine = engine
        self.api_key = api_key

    def routes(self) -> list[Route]:
        p = "/api/v2/projects/{project_id:neon_id}"
        b = p + "/branches/{branch_id:neon_id}"
        e = p + "/endpoints/{endpoint_id:neon_id}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/api/v2/auth", self.auth),
            ("GET", "/api/v2/users/me", self.current_user),
            ("GET", "/api/v2/users/me/organizations", self.organizations),
            ("GET", "/api/v2/projects", self.list_projects),
            ("GET", "/api/v2/projects/shared", self.shared_projects),
            ("GET", p, self.get_project),
            ("GET", p + "/branches", self.list_branches),
            ("POST", p + "/branches", self.create_branch),
            ("GET", p + "/branches/count", self.count_branches),
            ("GET", b, self.get_branch),
            ("PATCH", b, self.update_branch),
            ("DELETE", b, self.delete_branch),
            ("POST", b + "/restore", self.restore_branch),
            ("POST", b + "/set_as_default", self.set_default_branch),
            ("POST", b + "/recover", self.recover_branch),
            ("GET", b + "/endpoints", self.branch_endpoints),
            ("GET", b + "/databases", self.databases),
            ("POST", b + "/databases", self.create_database),
            ("GET", b + "/databases/{database_name}", self.get_database),
            ("PATCH", b + "/databases/{database_name}", self.update_database),
            ("DELETE", b + "/databases/{database_name}", self.delete_database),
            ("GET", b + "/roles", self.roles),
            ("POST", b + "/roles", self.create_role),
            ("GET", b + "/roles/{role_name}", self.get_role),
            ("DELETE", b + "/roles/{role_name}", self.delete_role),
            ("GET", b + "/roles/{role_name}/reveal_password", self.reveal_password),
            ("POST", b + "/roles/{role_name}/reset_password", self.reset_password),
            ("GET", b + "/schema", self.schema),
            ("GET", b + "/compare_schema", self.compare_schema),
            ("GET", p + "/endpoints", self.project_endpoints),
            ("POST", p + "/endpoints", self.create_endpoint),
            ("GET", e, self.get_endpoint),
            ("PATCH", e, self.update_endpoint),
            ("DELETE", e, self.delete_endpoint),
            ("POST", e + "/start", self.start_endpoint),
            ("POST", e + "/suspend", self.suspend_endpoint),
            ("POST", e + "/restart", self.restart_endpoint),
            ("GET", p + "/connection_uri", self.connection_uri),
            ("GET", p + "/operations", self.list_operations),
            ("GET", p + "/operations/{operation_id:neon_id}", self.get_operation),
            *SnapshotApi(self.engine).table(p, b),
        ]
        return [Route(path, self._wrap(handler), methods=[method]) for method, path, handler in table]

    def _wrap(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth[:7].lower() == "bearer " else ""
            if not token or not hmac.compare_digest(token.encode(), self.api_key.reveal().encode()):
                return _error(401, "authentication required: the API key is missing or not valid", request_id)
            try:
                response = await handler(request)
            except ApiError as exc:
                return _error(exc.status, exc.message, request_id, exc.code)
            response.headers["X-Request-ID"] = request_id
            return response

        return endpoint

    # --- helpers -------------------------------------------------------------------------------------

    def _project(self, request: Request) -> Project:
        return self.engine.project(request.path_params["project_id"])

    def _branch(self, request: Request) -> tuple[Project, Branch]:
        project = self._project(request)
        return project, self.engine.branch(project, request.path_params["branch_id"])

    def _ops(self, operations: list[Any]) -> list[dict[str, Any]]:
        return [serialize.operation(self.engine, op) for op in operations]

    # --- account -------------------------------------------------------------------------------------

    async def auth(self, request: Request) -> Response:
        return JSONResponse(
            {"account_id": serialize.ACCOUNT_ID, "auth_method": "api_key_org", "auth_data": "sandbox"}
        )

    async def current_user(self, request: Request) -> Response:
        return JSONResponse(serialize.current_user(self.engine))

    async def organizations(self, request: Request) -> Response:
        orgs = []
        for project in self.engine.projects.values():
            stamp = serialize._ts(project.created_at)
            orgs.append(
                {
                    "id": project.org_id,
                    "name": f"{project.name} (sandbox)",
                    "handle": project.org_id,
                    "plan": "launch",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "managed_by": "console",
                }
            )
        return JSONResponse({"organizations": orgs})

    # --- projects ------------------------------------------------------------------------------------

    async def list_projects(self, request: Request) -> Response:
        limit = _query_int(request, "limit", 1, 400) or 10
        cursor = request.query_params.get("cursor")
        org_id = request.query_params.get("org_id")
        search = (request.query_params.get("search") or "").lower()
        projects = sorted(self.engine.projects.values(), key=lambda p: p.id)
        projects = [
            p
            for p in projects
            if (not org_id or p.org_id == org_id)
            and (not search or search in p.name.lower() or search in p.id)
        ]
        if cursor:
            projects = [p for p in projects if p.id > cursor]
        page = projects[:limit]
        body: dict[str, Any] = {
            "projects": [serialize.project_item(self.engine, p) for p in page],
            "applications": {},
            "integrations": {},
        }
        if page:
            body["pagination"] = {"cursor": page[-1].id}
        return JSONResponse(body)

    async def shared_projects(self, request: Request) -> Response:
        _query_int(request, "limit", 1, 400)
        # Every sandbox project belongs to the key's own organization: none is shared with it.
        return JSONResponse({"projects": []})

    async def get_project(self, request: Request) -> Response:
        return JSONResponse({"project": serialize.project(self.engine, self._project(request))})

    # --- branches ------------------------------------------------------------------------------------

    async def list_branches(self, request: Request) -> Response:
        project = self._project(request)
        search = (request.query_params.get("search") or "").lower()
        sort_by = request.query_params.get("sort_by", "updated_at")
        sort_order = request.query_params.get("sort_order", "desc")
        if sort_by not in ("name", "created_at", "updated_at"):
            raise ApiError(400, "sort_by must be one of name, created_at, updated_at")
        if sort_order not in ("asc", "desc"):
            raise ApiError(400, "sort_order must be asc or desc")
        limit = _query_int(request, "limit", 1, 10000)
        offset = _decode_cursor(request.query_params.get("cursor"))
        now = self.engine.clock()
        include_deleted = _query_bool(request, "include_deleted")
        deleted = {
            g.branch.id: g for g in project.deleted.values() if include_deleted and now < g.recoverable_until
        }
        branches = [
            b
            for b in [*project.branches.values(), *(g.branch for g in deleted.values())]
            if not search or search in b.name.lower() or search in b.id
        ]
        branches.sort(key=lambda b: (getattr(b, sort_by), b.id), reverse=sort_order == "desc")
        end = len(branches) if limit is None else offset + limit
        page = branches[offset:end]
        # Neon echoes the sort order in upper case: a client must not send it back as is.
        pagination: dict[str, Any] = {"sort_by": sort_by, "sort_order": sort_order.upper()}
        if end < len(branches):
            pagination["next"] = _encode_cursor(end)
        bodies = []
        for b in page:
            body = serialize.branch(self.engine, project, b)
            if b.id in deleted:
                body["recovery"] = serialize.recovery(deleted[b.id])
            bodies.append(body)
        return JSONResponse(
            {
                "branches": bodies,
                "annotations": {b.id: _annotation(b.id, b.annotation) for b in page if b.annotation},
                "pagination": pagination,
            }
        )

    async def count_branches(self, request: Request) -> Response:
        project = self._project(request)
        count = self.engine.count_branches(project, request.query_params.get("search") or "")
        return JSONResponse({"count": count})

    async def set_default_branch(self, request: Request) -> Response:
        project, branch = self._branch(request)
        await self.engine.set_default_branch(project, branch)
        return JSONResponse({"branch": serialize.branch(self.engine, project, branch), "operations": []})

    async def recover_branch(self, request: Request) -> Response:
        project = self._project(request)
        branch, endpoints = await self.engine.recover_branch(project, request.path_params["branch_id"])
        return JSONResponse(
            {
                "branch": serialize.branch(self.engine, project, branch),
                "endpoints": [serialize.endpoint(self.engine, e) for e in endpoints],
            }
        )

    async def get_branch(self, request: Request) -> Response:
        project, branch = self._branch(request)
        return JSONResponse(
            {
                "branch": serialize.branch(self.engine, project, branch),
                "annotation": _annotation(branch.id, branch.annotation),
            }
        )

    async def create_branch(self, request: Request) -> Response:
        project = self._project(request)
        body = await json_body(request)
        spec = body.get("branch") or {}
        if not isinstance(spec, dict):
            raise ApiError(400, "branch must be an object")
        endpoints = body.get("endpoints") or []
        if not isinstance(endpoints, list) or not all(isinstance(e, dict) for e in endpoints):
            raise ApiError(400, "endpoints must be a list of objects")
        stamp = _string(spec, "parent_timestamp", "branch")
        expiry = _string(spec, "expires_at", "branch")
        annotation = body.get("annotation_value") or {}
        # AnnotationValueData: at most 50 properties, every value a string.
        if (
            not isinstance(annotation, dict)
            or len(annotation) > 50
            or not all(isinstance(v, str) for v in annotation.values())
        ):
            raise ApiError(400, "annotation_value must be an object of at most 50 string values")
        created = await self.engine.create_branch(
            project,
            parent_id=_string(spec, "parent_id", "branch"),
            name=_string(spec, "name", "branch"),
            parent_timestamp=parse_time(stamp, "branch.parent_timestamp") if stamp else None,
            parent_lsn=_string(spec, "parent_lsn", "branch"),
            endpoints=[str(e.get("type")) for e in endpoints],
            expires_at=parse_time(expiry, "branch.expires_at") if expiry else None,
            init_source=_string(spec, "init_source", "branch"),
            annotation={str(k): v for k, v in annotation.items()},
        )
        branch = created.branch
        result: dict[str, Any] = {
            "branch": serialize.branch(self.engine, project, branch),
            "endpoints": [serialize.endpoint(self.engine, e) for e in created.endpoints],
            "operations": self._ops(created.operations),
            "roles": [serialize.role(r, branch.id) for r in branch.roles.values()],
            "databases": [serialize.database(d, branch.id) for d in branch.databases.values()],
        }
        # Like Neon: connection URIs only when the answer is unambiguous (one role, one database).
        if created.endpoints and len(branch.roles) == 1 and len(branch.databases) == 1:
            role = next(iter(branch.roles.values()))
            db = next(iter(branch.databases.values()))
            endpoint = created.endpoints[0]
            uri = self.engine.connection_uri(
                project,
                branch_id=branch.id,
                endpoint_id=endpoint.id,
                database_name=db.name,
                role_name=role.name,
                pooled=False,
            )
            result["connection_uris"] = [
                {
                    "connection_uri": uri,
                    "connection_parameters": {
                        "database": db.name,
                        "password": role.password.reveal(),
                        "role": role.name,
                        "host": endpoint.host,
                        "pooler_host": endpoint.pooler_host,
                    },
                }
            ]
        return JSONResponse(result, 201)

    async def update_branch(self, request: Request) -> Response:
        project, branch = self._branch(request)
        body = await json_body(request)
        spec = body.get("branch")
        if not isinstance(spec, dict):
            raise ApiError(400, "branch is required")
        protected = spec.get("protected")
        if protected is not None and not isinstance(protected, bool):
            raise ApiError(400, "branch.protected must be a boolean")
        expiry = spec.get("expires_at")
        if expiry is not None and not isinstance(expiry, str):
            raise ApiError(400, "branch.expires_at must be a timestamp or null")
        await self.engine.update_branch(
            project,
            branch,
            name=_string(spec, "name", "branch"),
            protected=protected,
            expires_at=parse_time(expiry, "branch.expires_at") if expiry else None,
            set_expiry="expires_at" in spec,
        )
        return JSONResponse({"branch": serialize.branch(self.engine, project, branch), "operations": []})

    async def delete_branch(self, request: Request) -> Response:
        project = self._project(request)
        result = await self.engine.delete_branch(project, request.path_params["branch_id"])
        if result is None:
            return Response(status_code=204)
        branch, operations = result
        return JSONResponse(
            {"branch": serialize.branch(self.engine, project, branch), "operations": self._ops(operations)}
        )

    async def restore_branch(self, request: Request) -> Response:
        project, target = self._branch(request)
        body = await json_body(request)
        source_id = _string(body, "source_branch_id", "body")
        if source_id is None:
            raise ApiError(400, "source_branch_id is required")
        stamp = _string(body, "source_timestamp", "body")
        branch, operations = await self.engine.restore_branch(
            project,
            target,
            source_branch_id=source_id,
            source_timestamp=parse_time(stamp, "source_timestamp") if stamp else None,
            source_lsn=_string(body, "source_lsn", "body"),
            preserve_under_name=_string(body, "preserve_under_name", "body"),
        )
        return JSONResponse(
            {"branch": serialize.branch(self.engine, project, branch), "operations": self._ops(operations)}
        )

    async def databases(self, request: Request) -> Response:
        _, branch = self._branch(request)
        return JSONResponse(
            {"databases": [serialize.database(d, branch.id) for d in branch.databases.values()]}
        )

    async def get_database(self, request: Request) -> Response:
        _, branch = self._branch(request)
        database = self.engine.database(branch, request.path_params["database_name"])
        return JSONResponse({"database": serialize.database(database, branch.id)})

    async def create_database(self, request: Request) -> Response:
        project, branch = self._branch(request)
        spec = _object(await json_body(request), "database")
        name, owner = _string(spec, "name", "database"), _string(spec, "owner_name", "database")
        if name is None or owner is None:
            raise ApiError(400, "database.name and database.owner_name are required")
        database, operations = await self.engine.create_database(project, branch, name, owner)
        return JSONResponse(
            {"database": serialize.database(database, branch.id), "operations": self._ops(operations)}, 201
        )

    async def update_database(self, request: Request) -> Response:
        project, branch = self._branch(request)
        spec = _object(await json_body(request), "database")
        database, operations = await self.engine.update_database(
            project,
            branch,
            request.path_params["database_name"],
            new_name=_string(spec, "name", "database"),
            owner=_string(spec, "owner_name", "database"),
        )
        return JSONResponse(
            {"database": serialize.database(database, branch.id), "operations": self._ops(operations)}
        )

    async def delete_database(self, request: Request) -> Response:
        project, branch = self._branch(request)
        database, operations = await self.engine.delete_database(
            project, branch, request.path_params["database_name"]
        )
        return JSONResponse(
            {"database": serialize.database(database, branch.id), "operations": self._ops(operations)}
        )

    async def roles(self, request: Request) -> Response:
        _, branch = self._branch(request)
        return JSONResponse({"roles": [serialize.role(r, branch.id) for r in branch.roles.values()]})

    async def get_role(self, request: Request) -> Response:
        _, branch = self._branch(request)
        role = self.engine.role(branch, request.path_params["role_name"])
        return JSONResponse({"role": serialize.role(role, branch.id)})

    async def create_role(self, request: Request) -> Response:
        project, branch = self._branch(request)
        spec = _object(await json_body(request), "role")
        name = _string(spec, "name", "role")
        if name is None:
            raise ApiError(400, "role.name is required")
        role, operations = await self.engine.create_role(project, branch, name)
        return JSONResponse(
            {
                "role": serialize.role(role, branch.id, with_password=True),
                "operations": self._ops(operations),
            },
            201,
        )

    async def delete_role(self, request: Request) -> Response:
        project, branch = self._branch(request)
        role, operations = await self.engine.delete_role(project, branch, request.path_params["role_name"])
        return JSONResponse({"role": serialize.role(role, branch.id), "operations": self._ops(operations)})

    async def reset_password(self, request: Request) -> Response:
        project, branch = self._branch(request)
        role, operations = await self.engine.reset_role_password(
            project, branch, request.path_params["role_name"]
        )
        return JSONResponse(
            {"role": serialize.role(role, branch.id, with_password=True), "operations": self._ops(operations)}
        )

    async def reveal_password(self, request: Request) -> Response:
        _, branch = self._branch(request)
        role = self.engine.role(branch, request.path_params["role_name"])
        return JSONResponse({"password": role.password.reveal()})

    async def schema(self, request: Request) -> Response:
        project, branch = self._branch(request)
        db_name = request.query_params.get("db_name")
        if not db_name:
            raise ApiError(400, "db_name is required")
        fmt = request.query_params.get("format", "sql")
        if fmt not in ("sql", "json"):
            raise ApiError(400, "format must be sql or json")
        at, lsn = _query_time(request, "timestamp"), request.query_params.get("lsn")
        if at is not None and lsn is not None:
            raise ApiError(400, "timestamp and lsn are mutually exclusive")
        if fmt == "json":
            return JSONResponse(
                {"json": await self.engine.schema_json(project, branch, db_name, at=at, lsn=lsn)}
            )
        return JSONResponse({"sql": await self.engine.schema(project, branch, db_name, at=at, lsn=lsn)})

    async def compare_schema(self, request: Request) -> Response:
        project, branch = self._branch(request)
        db_name = request.query_params.get("db_name")
        if not db_name:
            raise ApiError(400, "db_name is required")
        base_id = request.query_params.get("base_branch_id")
        base = self.engine.branch(project, base_id) if base_id else branch
        diff = await self.engine.compare_schema(
            project,
            branch,
            db_name,
            at=_query_time(request, "timestamp"),
            lsn=request.query_params.get("lsn"),
            base=base,
            base_at=_query_time(request, "base_timestamp"),
            base_lsn=request.query_params.get("base_lsn"),
        )
        return JSONResponse({"diff": diff})

    # --- endpoints -----------------------------------------------------------------------------------

    async def branch_endpoints(self, request: Request) -> Response:
        project, branch = self._branch(request)
        endpoints = self.engine.branch_endpoints(project, branch)
        return JSONResponse({"endpoints": [serialize.endpoint(self.engine, e) for e in endpoints]})

    async def project_endpoints(self, request: Request) -> Response:
        project = self._project(request)
        return JSONResponse(
            {"endpoints": [serialize.endpoint(self.engine, e) for e in project.endpoints.values()]}
        )

    async def get_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        endpoint = self.engine.endpoint(project, request.path_params["endpoint_id"])
        return JSONResponse({"endpoint": serialize.endpoint(self.engine, endpoint)})

    async def create_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        body = await json_body(request)
        spec = body.get("endpoint")
        if not isinstance(spec, dict):
            raise ApiError(400, "endpoint is required")
        branch_id = _string(spec, "branch_id", "endpoint")
        kind = _string(spec, "type", "endpoint")
        if branch_id is None or kind is None:
            raise ApiError(400, "endpoint.branch_id and endpoint.type are required")
        endpoint, operations = await self.engine.create_endpoint(
            project, self.engine.branch(project, branch_id), kind
        )
        return JSONResponse(
            {"endpoint": serialize.endpoint(self.engine, endpoint), "operations": self._ops(operations)}, 201
        )

    async def start_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        endpoint = self.engine.endpoint(project, request.path_params["endpoint_id"])
        operations = self.engine.start_endpoint(project, endpoint)
        return JSONResponse(
            {"endpoint": serialize.endpoint(self.engine, endpoint), "operations": self._ops(operations)}
        )

    async def _endpoint_answer(self, endpoint: Endpoint, operations: list[Any]) -> Response:
        return JSONResponse(
            {"endpoint": serialize.endpoint(self.engine, endpoint), "operations": self._ops(operations)}
        )

    async def suspend_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        endpoint = self.engine.endpoint(project, request.path_params["endpoint_id"])
        return await self._endpoint_answer(endpoint, await self.engine.suspend_endpoint(project, endpoint))

    async def restart_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        endpoint = self.engine.endpoint(project, request.path_params["endpoint_id"])
        return await self._endpoint_answer(endpoint, await self.engine.restart_endpoint(project, endpoint))

    async def update_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        endpoint = self.engine.endpoint(project, request.path_params["endpoint_id"])
        spec = _object(await json_body(request), "endpoint")
        changes: dict[str, object] = {}
        for key, kinds in _ENDPOINT_FIELDS.items():
            if key not in spec:
                continue
            value = spec[key]
            # bool is an int in Python: refuse it where a number is meant.
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ApiError(400, f"endpoint.{key} has the wrong type")
            changes[key] = value
        timeout = changes.get("suspend_timeout_seconds")
        if isinstance(timeout, int) and not -1 <= timeout <= 604800:
            raise ApiError(400, "endpoint.suspend_timeout_seconds must be between -1 and 604800")
        operations = await self.engine.update_endpoint(project, endpoint, changes)
        return await self._endpoint_answer(endpoint, operations)

    async def delete_endpoint(self, request: Request) -> Response:
        project = self._project(request)
        result = await self.engine.delete_endpoint(project, request.path_params["endpoint_id"])
        if result is None:
            return Response(status_code=204)
        return await self._endpoint_answer(*result)

    async def connection_uri(self, request: Request) -> Response:
        project = self._project(request)
        database_name = request.query_params.get("database_name")
        role_name = request.query_params.get("role_name")
        if not database_name or not role_name:
            raise ApiError(400, "database_name and role_name are required")
        uri = self.engine.connection_uri(
            project,
            branch_id=request.query_params.get("branch_id"),
            endpoint_id=request.query_params.get("endpoint_id"),
            database_name=database_name,
            role_name=role_name,
            pooled=_query_bool(request, "pooled"),
        )
        return JSONResponse({"uri": uri})

    # --- operations ----------------------------------------------------------------------------------

    async def list_operations(self, request: Request) -> Response:
        project = self._project(request)
        limit = _query_int(request, "limit", 1, 1000) or 10
        operations = sorted(project.operations, key=lambda op: op.created_at, reverse=True)
        cursor = request.query_params.get("cursor")
        if cursor:
            before = parse_time(cursor, "cursor")
            operations = [op for op in operations if op.created_at < before]
        page = operations[:limit]
        body: dict[str, Any] = {"operations": self._ops(page)}
        if page:
            body["pagination"] = {"cursor": serialize._ts(page[-1].created_at)}
        return JSONResponse(body)

    async def get_operation(self, request: Request) -> Response:
        project = self._project(request)
        op_id = request.path_params["operation_id"]
        op = next((o for o in project.operations if o.id == op_id), None)
        if op is None:
            raise ApiError(404, f"operation {op_id} not found")
        return JSONResponse({"operation": serialize.operation(self.engine, op)})


_ENDPOINT_FIELDS: dict[str, tuple[type, ...]] = {
    "suspend_timeout_seconds": (int,),
    "autoscaling_limit_min_cu": (int, float),
    "autoscaling_limit_max_cu": (int, float),
    "disabled": (bool,),
    "passwordless_access": (bool,),
    "name": (str,),
    "settings": (dict,),
    "branch_id": (str,),
}


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise ApiError(400, f"{key} is required and must be an object")
    return value


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        offset = int(value["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(400, "cursor is not valid") from None
    if offset < 0:
        raise ApiError(400, "cursor is not valid")
    return offset


def build_app(
    engine: Engine, api_key: Secret, *, faults: list[Fault] | None = None, latency_ms: float = 0
) -> Any:
    """The ASGI app: the API wrapped in fault injection and latency."""

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"no such API path: {request.method} {request.url.path}", str(uuid.uuid4()))

    async def bad_method(request: Request, exc: Exception) -> Response:
        return _error(405, f"method {request.method} is not allowed on {request.url.path}", str(uuid.uuid4()))

    app = Starlette(
        routes=SandboxApi(engine, api_key).routes(), exception_handlers={404: not_found, 405: bad_method}
    )
    return FaultMiddleware(app, faults or [], latency_ms)
