"""Holds recorded exchanges with the cloud against its published OpenAPI document,
with openapi-core (an independent validator, not the service's code).

Input (argv[1]): {"spec": path, "allowances": [...], "exchanges": [...]}, as
tests/api/contract.rs writes it. Each exchange: method, path, query, auth,
request_content_type, request_body, status, response_content_type, response_body,
retry_after. Prints a summary and each finding; exits 1 on any.

For each request: the operation exists (method + path template under the
document's server, /api/2), every query parameter is declared, path and query
parameters validate, the body validates against the declared request body (and
there is none where none is declared), credentials are sent where the operation
requires them. For each answer: its status is declared for the operation and its
body validates against the declared schema (no body where none is declared).

Allowances (each with its reason, counted and printed, never silent):
- "path": a request the document does not hold as an operation; not validated.
- "prefix": requests of another API; not validated.
- "alias": a request validated as another path's operation.
- "status": statuses an operation may answer though undeclared; the body must
  still be the document's errorScheme, and "retry_after" statuses must say when.
- "parameter": a path parameter whose declared pattern the document contradicts;
  waived only when the value matches "must_match".
- "reading" "nullable_beside_allof": the document writes a nullable reference as
  {"nullable": true, "allOf": [{"$ref": ...}]}; OpenAPI 3.0.3 applies `nullable` only
  beside `type`, which would forbid the null the document means (e.g. a live
  tenant's `deleted_at`). Such a schema is read as "the reference, or null"; the
  count is of schemas so read.
"""

import json
import re
import sys
from collections import Counter
from urllib.parse import parse_qsl

from jsonschema_path import SchemaPath
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.request.validators import V30RequestBodyValidator, V30RequestParametersValidator
from openapi_core.validation.response.validators import V30ResponseDataValidator
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from werkzeug.datastructures import Headers, ImmutableMultiDict

HOST = "https://dev-cloud.acronis.com"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class Request:
    def __init__(self, exchange, path):
        self.host_url = HOST
        self.path = path
        self.full_url_pattern = HOST + path
        self.method = exchange["method"].lower()
        query = ImmutableMultiDict(parse_qsl(exchange.get("query") or "", keep_blank_values=True))
        self.parameters = RequestParameters(query=query, header=Headers(), cookie=ImmutableMultiDict(), path={})
        self.content_type = (exchange.get("request_content_type") or "").lower()
        body = exchange.get("request_body")
        self.body = body.encode() if body else None


class Response:
    def __init__(self, exchange):
        self.status_code = exchange["status"]
        self.content_type = (exchange.get("response_content_type") or "").lower()
        self.headers = Headers()
        body = exchange.get("response_body")
        self.data = body.encode() if body else None


def read_nullable_beside_allof(node):
    """Rewrites {"nullable": true, "allOf"|"anyOf"|"oneOf": ...} without `type` into
    "that, or null"; answers how many schemas were rewritten."""
    count = 0
    if isinstance(node, dict):
        for value in node.values():
            count += read_nullable_beside_allof(value)
        if node.get("nullable") is True and "type" not in node and any(k in node for k in ("allOf", "anyOf", "oneOf")):
            inner = {k: v for k, v in node.items() if k != "nullable"}
            node.clear()
            node["anyOf"] = [inner, {"enum": [None], "nullable": True}]
            count += 1
    elif isinstance(node, list):
        for value in node:
            count += read_nullable_beside_allof(value)
    return count


def signature(message):
    """A finding without its values, to group alike ones."""
    return re.sub(r"Value .*? not valid", "Value not valid", message)[:400]


def describe(error):
    """An openapi-core error with its causes (the schema errors say where)."""
    parts = [f"{type(error).__name__}: {error}"]
    seen = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            for e in list(schema_errors)[:5]:
                where = "/".join(str(p) for p in e.absolute_path)
                parts.append(f"at /{where}: {e.message[:300]}")
        else:
            parts.append(f"{type(cause).__name__}: {str(cause)[:300]}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts)


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    with open(job["spec"]) as f:
        raw = json.load(f)
    allowances = job["allowances"]
    used = Counter()
    if any(a["kind"] == "reading" and a["id"] == "nullable_beside_allof" for a in allowances):
        used["nullable_beside_allof"] = read_nullable_beside_allof(raw)
    spec = SchemaPath.from_dict(raw)
    finder = APICallPathFinder(spec)
    params_validator = V30RequestParametersValidator(spec)
    body_validator = V30RequestBodyValidator(spec)
    data_validator = V30ResponseDataValidator(spec)
    registry = Registry().with_resource("urn:spec", Resource.opaque(raw))
    error_scheme = OAS30Validator({"$ref": "urn:spec#/components/schemas/errorScheme"}, registry=registry)

    per_operation = Counter()
    findings = []
    validated = 0

    def allowance(kind, test):
        return next((a for a in allowances if a["kind"] == kind and test(a)), None)

    for n, exchange in enumerate(job["exchanges"]):
        method, path = exchange["method"].upper(), exchange["path"]
        label = f"#{n} {method} {path}{'?' + exchange['query'] if exchange.get('query') else ''} -> {exchange['status']}"
        skip = allowance("path", lambda a: a["method"] == method and a["path"] == path) or allowance("prefix", lambda a: path.startswith(a["prefix"]))
        if skip:
            used[skip["id"]] += 1
            continue
        alias = allowance("alias", lambda a: a["method"] == method and a["path"] == path)
        if alias:
            used[alias["id"]] += 1
            path = alias["as"]
        request, response = Request(exchange, path), Response(exchange)
        try:
            found = finder.find(request.method, request.full_url_pattern)
        except Exception as e:
            findings.append(f"undeclared request {label}: {type(e).__name__}: {e}")
            continue
        template = found.path_result.pattern
        operation = f"{method} {template}"
        op = raw["paths"][template][method.lower()]
        per_operation[operation] += 1
        validated += 1

        # The request.
        declared = {p["name"] for p in op.get("parameters", []) + raw["paths"][template].get("parameters", []) if p["in"] == "query"}
        for name in request.parameters.query.keys():
            if name not in declared:
                findings.append(f"non-conforming request {label}: query parameter {name!r} is not declared for {operation}")
        for error in params_validator.iter_errors(request):
            waiver = allowance("parameter", lambda a: a["operation"] == operation and getattr(error, "name", None) == a["parameter"])
            value = request.parameters.path.get(waiver["parameter"]) if waiver else None
            if waiver and value is not None and re.fullmatch(waiver["must_match"], str(value)):
                used[waiver["id"]] += 1
                continue
            findings.append(f"non-conforming request {label}: {describe(error)}")
        if "requestBody" in op:
            for error in body_validator.iter_errors(request):
                findings.append(f"non-conforming request {label}: {describe(error)}")
        elif request.body:
            findings.append(f"non-conforming request {label}: a body ({request.content_type}) where {operation} declares none")
        security = op.get("security", raw.get("security") or [])
        needs_credentials = security and {} not in security and not op.get("x-optionalSecurity")
        if needs_credentials and exchange.get("auth") not in ("Bearer", "Basic"):
            findings.append(f"non-conforming request {label}: no credentials for {operation}")

        # The answer.
        status = str(exchange["status"])
        responses = op.get("responses", {})
        if status in responses or "default" in responses:
            declared_answer = responses.get(status) or responses["default"]
            if not declared_answer.get("content"):
                if response.data:
                    findings.append(f"non-conforming answer {label}: a body where {operation} {status} declares none")
                continue
            for error in data_validator.iter_errors(request, response):
                findings.append(f"non-conforming answer {label}: {describe(error)}")
            continue
        waiver = allowance("status", lambda a: exchange["status"] in a["statuses"] and (a["operations"] == "*" or operation in a["operations"]))
        if not waiver:
            findings.append(f"non-conforming answer {label}: status {status} is not declared for {operation} (declared: {', '.join(sorted(responses))})")
            continue
        used[waiver["id"]] += 1
        if exchange["status"] in waiver.get("retry_after", []) and not exchange.get("retry_after"):
            findings.append(f"non-conforming answer {label}: {status} without Retry-After")
        try:
            body = json.loads(exchange.get("response_body") or "null")
        except ValueError as e:
            findings.append(f"non-conforming answer {label}: not JSON: {e}")
            continue
        for e in error_scheme.iter_errors(body):
            findings.append(f"non-conforming answer {label}: not an errorScheme: {e.message[:300]}")

    print(f"{len(job['exchanges'])} exchanges, {validated} validated against the document")
    print("requests per operation:")
    for operation, count in sorted(per_operation.items()):
        print(f"  {count:6}  {operation}")
    print("allowances:")
    for a in allowances:
        print(f"  {used[a['id']]:6}  {a['id']}: {a['reason']}")
    undeclared = sum(1 for f in findings if f.startswith("undeclared"))
    requests = sum(1 for f in findings if f.startswith("non-conforming request"))
    answers = sum(1 for f in findings if f.startswith("non-conforming answer"))
    # Alike findings once, with their count and a first example.
    groups = {}
    for finding in findings:
        head, _, message = finding.partition(": ")
        kind = head.split(" #")[0]
        operation = " ".join(head.split(" ")[-4:-2]) if "#" in head else head
        key = (kind, signature(message))
        groups.setdefault(key, [0, head, message])[0] += 1
    for (kind, _), (count, example, message) in sorted(groups.items(), key=lambda g: -g[1][0]):
        print(f"{count:6} x {kind}, e.g. {example}: {message[:1500]}")
    print(f"{undeclared} undeclared requests, {requests} non-conforming requests, {answers} non-conforming answers")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
