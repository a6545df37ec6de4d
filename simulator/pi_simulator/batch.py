"""The batch controller: ``POST /piwebapi/batch`` in PI Web API's format.

The body is a JSON object keyed by request id. Each request has ``Method`` and ``Resource``
(an absolute URL with its query string, or a JSONPath into a parent's response), optional
``Content`` (a string), ``Headers``, ``ParentIds`` and ``Parameters`` (JSONPaths substituted into
``{0}``, ``{1}``... of the Resource). ``RequestTemplate`` fans one request out over every token a
parameter selects. The reply is 207 with ``{id: {"Status", "Headers", "Content"}}``; a request
whose parent failed gets 409. A list-shaped body is refused with 400, as the real server does.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote, urlsplit

from .api import JSON, ApiError, PiWebApi, Query, Reply


def execute_batch(api: PiWebApi, body: bytes) -> Reply:
    try:
        requests = json.loads(body or b"null")
    except ValueError as error:
        return Reply.error(400, f"The batch request body is not valid JSON: {error}.")
    if not isinstance(requests, dict):
        return Reply.error(400, "The batch request must be a JSON object whose keys are request ids and whose "
                                "values are request objects, not " + type(requests).__name__ + ".")
    try:
        order = _order(requests)
    except ApiError as error:
        return Reply.error(error.status, *error.messages)
    results: dict[str, dict] = {}
    for request_id in order:
        results[request_id] = _execute_one(api, request_id, requests[request_id], results)
    chunks: list = [b"{"]
    for i, request_id in enumerate(requests):
        result = results[request_id]
        chunks.append((b"," if i else b"") + json.dumps(request_id).encode()
                      + b':{"Status":' + str(result["Status"]).encode()
                      + b',"Headers":' + json.dumps(result["Headers"]).encode() + b',"Content":')
        chunks.extend(result["Chunks"] or [b"null"])
        chunks.append(b"}")
    chunks.append(b"}")
    return Reply(207, chunks)


def _order(requests: dict) -> list[str]:
    """Request ids with every parent before its children."""
    for request_id, request in requests.items():
        if not isinstance(request, dict):
            raise ApiError(400, f"Batch request '{request_id}' must be an object with Method and Resource.")
        for parent in request.get("ParentIds") or []:
            if parent not in requests:
                raise ApiError(400, f"Batch request '{request_id}' names an unknown parent '{parent}'.")
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(request_id: str, trail: tuple[str, ...]) -> None:
        if state.get(request_id) == 2:
            return
        if state.get(request_id) == 1:
            raise ApiError(400, f"Batch requests form a cycle: {' -> '.join(trail + (request_id,))}.")
        state[request_id] = 1
        for parent in requests[request_id].get("ParentIds") or []:
            visit(parent, trail + (request_id,))
        state[request_id] = 2
        order.append(request_id)

    for request_id in requests:
        visit(request_id, ())
    return order


def _execute_one(api: PiWebApi, request_id: str, request: dict, results: dict[str, dict]) -> dict:
    for parent in request.get("ParentIds") or []:
        if not 200 <= results[parent]["Status"] < 300:
            return _result(Reply.error(409, f"The parent request '{parent}' of request '{request_id}' failed."))
    try:
        method = request.get("Method", "GET")
        if not isinstance(method, str) or method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ApiError(400, f"Batch request '{request_id}' has an invalid Method '{method}'.")
        content = request.get("Content")
        if content is not None and not isinstance(content, str):
            raise ApiError(400, f"The Content of batch request '{request_id}' must be a string.")
        parameters = [_resolve(results, p, request_id) for p in request.get("Parameters") or []]
        template = request.get("RequestTemplate")
        if template is not None:
            resource_template = template.get("Resource") if isinstance(template, dict) else None
            if not isinstance(resource_template, str):
                raise ApiError(400, f"The RequestTemplate of batch request '{request_id}' needs a Resource.")
            fan_out = max((len(p) for p in parameters), default=1)
            items = []
            for i in range(fan_out):
                resource = _substitute(resource_template, [p[i] if len(p) > 1 else p[0] for p in parameters])
                items.append(_result(_call(api, method.upper(), resource, content)))
            document = {"Items": [{"Status": it["Status"], "Headers": it["Headers"],
                                   "Content": json.loads(b"".join(bytes(c) for c in it["Chunks"]) or b"null")}
                                  for it in items]}
            worst = max((it["Status"] for it in items), default=200)
            return _result(Reply.json(document, 207 if worst >= 300 else 200))
        resource = request.get("Resource")
        if not isinstance(resource, str) or not resource:
            raise ApiError(400, f"Batch request '{request_id}' needs a Resource (a URL or a JSONPath).")
        if resource.startswith("$"):
            tokens = _resolve(results, resource, request_id)
            if len(tokens) != 1:
                raise ApiError(400, f"The Resource JSONPath of request '{request_id}' selected {len(tokens)} "
                                    "tokens; use a RequestTemplate to fan out.")
            resource = str(tokens[0])
        for i, tokens in enumerate(parameters):
            if len(tokens) != 1:
                raise ApiError(400, f"Parameter {i} of request '{request_id}' selected {len(tokens)} tokens; "
                                    "use a RequestTemplate to fan out over several.")
        resource = _substitute(resource, [t[0] for t in parameters])
        return _result(_call(api, method.upper(), resource, content))
    except ApiError as error:
        return _result(Reply.error(error.status, *error.messages))


def _substitute(resource: str, values: list) -> str:
    for i, value in enumerate(values):
        resource = resource.replace("{" + str(i) + "}", str(value))
    return resource


def _call(api: PiWebApi, method: str, resource: str, content: str | None) -> Reply:
    if len(resource) > api.server_config.max_url_length:
        return Reply.error(414, f"The request URL is {len(resource)} characters long; the limit is "
                                f"{api.server_config.max_url_length}.")
    parts = urlsplit(resource)
    path = unquote(parts.path)
    index = path.lower().find("/piwebapi")
    if index < 0:
        return Reply.error(400, f"The resource '{resource}' is not a PI Web API URL.")
    path = path[index + len("/piwebapi"):]
    if path.strip("/").lower() == "batch":
        return Reply.error(400, "A batch request cannot contain another batch request.")
    return api.handle(method, path, Query.from_url(parts.query), (content or "").encode())


def _result(reply: Reply) -> dict:
    return {"Status": reply.status, "Headers": {"Content-Type": JSON}, "Chunks": reply.chunks}


_TOKEN = re.compile(r"\.([A-Za-z_][\w]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(\d+)\s*\]|\[\s*\*\s*\]|\.\*")


def _resolve(results: dict[str, dict], path: str, request_id: str) -> list:
    """Evaluate a JSONPath (``$.1.Content.Items[*].WebId``) over the parents' responses."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ApiError(400, f"Parameter '{path}' of request '{request_id}' is not a JSONPath.")
    document = {rid: _as_document(result) for rid, result in results.items()}
    nodes = [document]
    position = 1
    # Request ids are often numbers: allow "$.1.Content" as well as "$['1'].Content".
    while position < len(path):
        match = re.compile(r"\.([^.\[]+)").match(path, position) if path[position] == "." else None
        token = _TOKEN.match(path, position)
        if token and token.group(0) not in (".",):
            name = token.group(1) or token.group(2) or token.group(3)
            index = token.group(4)
            if name is not None:
                nodes = [n[name] for n in nodes if isinstance(n, dict) and name in n]
            elif index is not None:
                nodes = [n[int(index)] for n in nodes if isinstance(n, list) and int(index) < len(n)]
            else:  # wildcard
                nodes = [c for n in nodes for c in (n.values() if isinstance(n, dict) else n if isinstance(n, list) else [])]
            position = token.end()
        elif match:
            name = match.group(1)
            nodes = [n[name] for n in nodes if isinstance(n, dict) and name in n]
            position = match.end()
        else:
            raise ApiError(400, f"Cannot evaluate the JSONPath '{path}' of request '{request_id}'.")
    return nodes


def _as_document(result: dict) -> dict:
    if "Document" not in result:
        raw = b"".join(bytes(c) for c in result["Chunks"])
        result["Document"] = {"Status": result["Status"], "Headers": result["Headers"],
                              "Content": json.loads(raw) if raw else None}
    return result["Document"]
