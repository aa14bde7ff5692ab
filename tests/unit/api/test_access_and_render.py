"""check_bind's loopback rule, the token check, and the pure view -> JSON mapping."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from reconciler.api import check_bind, render, schemas
from reconciler.api.access import TokenCheck
from reconciler.api.errors import ApiError
from reconciler.model.desired import Management
from reconciler.store import CollectionView, DeviceView


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_binds_are_allowed_without_a_token(host: str) -> None:
    check_bind(host, ())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "example.org", ""])
def test_any_other_bind_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="no API token is configured"):
        check_bind(host, ())
    with pytest.raises(ValueError):
        check_bind(host, ("",))  # an empty token is no token


def test_any_bind_is_allowed_once_a_token_is_configured() -> None:
    check_bind("0.0.0.0", ("t",))


async def test_the_token_check_accepts_any_configured_token_and_nothing_else() -> None:
    check = TokenCheck(["alpha", "beta"])
    bare = Request({"type": "http", "headers": []})  # no dashboard session cookie
    await check(bare, "alpha")
    await check(bare, "beta")
    for wrong in (None, "", "alph", "alphaa", "gamma"):
        with pytest.raises(ApiError) as caught:
            await check(bare, wrong)
        assert caught.value.status == 401
    await TokenCheck([])(bare, None)  # nothing configured: open (check_bind keeps it local)


def test_unset_ids_and_unreported_values_are_absent_keys_and_tags_an_object() -> None:
    view = DeviceView("17dh0cf4465ae6", "17dh0cf43jfhig", {}, None, None, None, None, None,
                      None, None, None)
    assert render.device(view) == {"deviceId": "17dh0cf4465ae6",
                                   "collectionId": "17dh0cf43jfhig", "tags": {},
                                   "firmware": {}}
    schemas.Device.model_validate(render.device(view))
    collection = CollectionView("17dh0cf43jfhig", "", Management.DISABLED, None, None)
    assert render.collection(collection) == {
        "collectionId": "17dh0cf43jfhig", "firmware": {"management": "disabled"}, "tags": {}}


def test_rendered_bytes_are_compact_json() -> None:
    assert render.dumps({"a": [1, "x"], "b": {}}) == b'{"a":[1,"x"],"b":{}}'


def test_source_status_errors_keep_file_and_line_and_times_become_milliseconds() -> None:
    out = render.source({"branch": "main", "last_sync": 12.0015,
                         "errors": ["m.yaml:3: devices[0].target: unknown image"]}, "abc")
    assert out == {"branch": "main", "appliedRevision": "abc", "lastSync": 12002,
                   "errors": ["m.yaml:3: devices[0].target: unknown image"],
                   "degraded": "degraded: m.yaml:3: devices[0].target: unknown image, "
                               "running abc"}
