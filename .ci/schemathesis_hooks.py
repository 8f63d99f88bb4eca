"""schemathesis hooks for the Migration Portal API (loaded by schemathesis.toml).

Two refusals that are right are not failures; every other failure stands.

- A paging cursor is opaque: only the `next_cursor` of an earlier page is one, and
  the document can say no more of it than its alphabet. A cursor schemathesis
  invents is refused with 400 `invalid_cursor`.
- In the stateful phase, schemathesis links a response field to a path parameter
  by its name (dependency analysis); when that field is null (a migration made
  from a selection has no `precheck_id`), it sends the text "None", which is no
  UUID: the service refuses it with 400 `invalid_path_parameter`. A link that
  picks from a list (`/items/*/migration_id`) skips no nulls: the parameter is
  then Python's None, which is sent as the same "None".
"""

import schemathesis


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.__class__.__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    code = _code(response)
    invented_cursor = bool(case.query) and "cursor" in case.query and code == "invalid_cursor"
    null_link = any(_is_null(value) for value in (case.path_parameters or {}).values()) and code == "invalid_path_parameter"
    return not (invented_cursor or null_link)


def _is_null(value):
    return value is None or value == "None"


def _code(response):
    try:
        return response.json().get("code")
    except Exception:
        return None
