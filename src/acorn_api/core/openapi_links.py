"""OpenAPI links, derived from the routes, so clients and stateful fuzzers can chain operations.

Two rules, applied to whatever routes exist (a resource added tomorrow gets its links tomorrow):

* **create → the created object**: a ``POST`` on a collection (``/v1/stores``) whose success answer carries an
  ``id`` links to every operation under ``/v1/stores/{store_id}`` (read, update, delete, its actions and
  nested lists), passing ``id`` as the path parameter. A few creations return an object that lives under
  another collection (a sync started on a connection is read at ``/v1/sync-runs/{run_id}``): ``ALIASES``.
* **create → where it is referenced**: the created object's id fills the same-named body field of other
  creations (a new item's id as a quote's ``item_id``, a new connection's as an invoice submission's
  ``connection_id``).
* **a list → its first object**: a collection no POST creates (refund cases, events) links its list to the
  operations on ``data[0]``.
* **object → its next operations**: an operation on ``/v1/quotes/{quote_id}`` (or one of its actions) whose
  answer carries a ``version`` links to the other operations on that object, with the path parameter from
  the request and the new ``version`` from the answer, so optimistic-concurrency chains (create → submit →
  approve) are followed with the right version.

Whenever the target's JSON body has a ``version`` property and the source's answer has one, the link fills it
in (the rest of the body is generated).
"""

from __future__ import annotations

import re
from typing import Any

PARAM = re.compile(r"\{([^}]+)\}")
METHODS = ("get", "put", "post", "patch", "delete")
SUCCESS = ("201", "202", "200")

# the path a POST creates under → the collection the created object is read from
ALIASES: dict[str, str] = {
    "/v1/connections/{connection_id}/syncs": "/v1/sync-runs",
}


def add_links(schema: dict[str, Any]) -> None:
    """Add ``links`` to the success responses of ``schema`` (in place)."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    components = schema.get("components", {}).get("schemas", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def properties(node: dict[str, Any] | None) -> set[str]:
        if not node:
            return set()
        node = resolve(node)
        found = set(node.get("properties", {}))
        for part in node.get("allOf", []):
            found |= properties(part)
        return found

    def success(operation: dict[str, Any]) -> tuple[str, set[str]] | None:
        for code in SUCCESS:
            response = operation.get("responses", {}).get(code)
            if response is not None:
                body = response.get("content", {}).get("application/json", {}).get("schema")
                return code, properties(body)
        return None

    def body_properties(operation: dict[str, Any]) -> set[str]:
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        return properties(body)

    def targets(prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Operations on ``prefix/{param}`` and below, as (path, parameter, operation)."""
        found = []
        for path, operations in paths.items():
            match = re.fullmatch(re.escape(prefix) + r"/\{([^}]+)\}(/.*)?", path)
            if match:
                for method in METHODS:
                    if method in operations:
                        found.append((path, match.group(1), operations[method]))
        return found

    def link(
        source: dict[str, Any], code: str, answer: set[str], target: dict[str, Any], parameters: dict[str, str]
    ) -> None:
        definition: dict[str, Any] = {"operationId": target["operationId"], "parameters": parameters}
        if "version" in answer and "version" in body_properties(target):
            definition["requestBody"] = {"version": "$response.body#/version"}
        links = source["responses"][code].setdefault("links", {})
        links[target["operationId"]] = definition

    for path, operations in paths.items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None or "operationId" not in operation:
                continue
            result = success(operation)
            if result is None:
                continue
            code, answer = result
            # rule 1: a creation on a collection
            if method == "post" and not path.endswith("}") and "id" in answer:
                inherited = {f"path.{p}": f"$request.path.{p}" for p in PARAM.findall(path)}
                names = set()
                for target_path, parameter, target in targets(ALIASES.get(path, path)):
                    names.add(parameter)
                    wanted = {f"path.{parameter}": "$response.body#/id"}
                    wanted |= {k: v for k, v in inherited.items() if k[5:] in PARAM.findall(target_path)}
                    link(operation, code, answer, target, wanted)
                # rule 4: the created object referenced from another operation's body (an item in a quote)
                for other_path, other_operations in paths.items():
                    for other_method in ("post", "put", "patch"):
                        other = other_operations.get(other_method)
                        if other is None or other is operation or "{" in other_path:
                            continue
                        for name in sorted(names & body_properties(other)):
                            definition = {
                                "operationId": other["operationId"],
                                "requestBody": {name: "$response.body#/id"},
                            }
                            operation["responses"][code].setdefault("links", {})[other["operationId"]] = definition
            # rule 3: a collection nothing creates through the API (cases, events): its list leads to its first object
            if (
                method == "get"
                and not path.endswith("}")
                and "data" in answer
                and "post" not in operations
                and not any(alias == path for alias in ALIASES.values())
            ):
                listed = resolve(operation["responses"][code]["content"]["application/json"]["schema"])
                item = properties(listed["properties"]["data"].get("items"))
                for target_path, parameter, target in targets(path):
                    field = parameter if parameter in item else "id" if parameter.endswith("_id") else None
                    if PARAM.findall(target_path) == [parameter] and field in item:
                        link(operation, code, set(), target, {f"path.{parameter}": f"$response.body#/data/0/{field}"})
            # rule 2: an operation on one object, answering its new version
            match = re.fullmatch(r"(.*)/\{([^}]+)\}(/[^{}]*)?", path)
            if match and "version" in answer and "id" in answer:
                collection, parameter = match.group(1), match.group(2)
                for target_path, target_parameter, target in targets(collection):
                    if target_parameter != parameter or target is operation:
                        continue
                    wanted = {f"path.{p}": f"$request.path.{p}" for p in PARAM.findall(target_path)}
                    link(operation, code, answer, target, wanted)
