import httpx
import pytest
from prefect import flow
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings

from voxflow import orchestration
from voxflow.errors import PrefectUnreachable
from voxflow.settings import Settings
from tests.voxflow_cli import reserve_port


def test_flow_runs_on_the_embedded_server_send_no_heartbeats(test_settings: Settings, prefect_api: str) -> None:
    with orchestration.prefect_api(test_settings) as url:
        assert url == prefect_api
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()


def test_an_operators_server_gets_prefects_heartbeats(test_settings: Settings) -> None:
    configured = test_settings.model_copy(update={"prefect_api_url": "http://prefect.internal:4200/api"})
    with orchestration.prefect_api(configured) as url:
        assert url == "http://prefect.internal:4200/api"
        assert get_current_settings().api.url == url
        assert get_current_settings().flows.heartbeat_frequency == PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None


def test_the_api_gone_ends_the_block_with_one_line_without_its_secret(test_settings: Settings) -> None:
    configured = test_settings.model_copy(update={"prefect_api_url": "http://ops:hunter2@prefect.internal:4200/api"})
    with pytest.raises(PrefectUnreachable) as gone, orchestration.prefect_api(configured):
        raise httpx.ConnectError("[Errno 111] Connection refused")
    assert gone.value.reason == "Prefect API unreachable (http://ops:***@prefect.internal:4200/api): ConnectError: [Errno 111] Connection refused"


@pytest.mark.parametrize(("status", "mapped"), [(503, True), (500, True), (404, False)])
def test_a_server_error_is_the_api_gone_a_refused_request_is_not(test_settings: Settings, status: int, mapped: bool) -> None:
    configured = test_settings.model_copy(update={"prefect_api_url": "http://prefect.internal:4200/api"})
    request = httpx.Request("POST", "http://prefect.internal:4200/api/flow_runs/x/set_state")
    error = PrefectHTTPStatusError("server said no", request=request, response=httpx.Response(status, request=request))
    with pytest.raises(PrefectUnreachable if mapped else PrefectHTTPStatusError) as raised, orchestration.prefect_api(configured):
        raise error
    if mapped:
        assert str(raised.value).startswith(f"Prefect API unreachable (http://prefect.internal:4200/api): HTTP {status} "), raised.value


@flow
def _probe() -> int:
    return 1


def test_a_flow_whose_api_never_answered_ends_with_one_line(test_settings: Settings, prefect_api: str) -> None:
    # Prefect's client ends such a flow with RuntimeError("Failed to reach API at ..."), a 110-line traceback.
    with reserve_port() as held:
        closed = test_settings.model_copy(update={"prefect_api_url": f"http://127.0.0.1:{held.getsockname()[1]}/api"})
        with pytest.raises(PrefectUnreachable, match=r"^Prefect API unreachable \(http://127\.0\.0\.1:\d+/api\): ConnectError: .*refused"):
            with orchestration.prefect_api(closed):
                _probe()
    elsewhere = test_settings.model_copy(update={"prefect_api_url": prefect_api.removesuffix("/api") + "/wrongpath"})
    with pytest.raises(PrefectUnreachable, match="HTTP 404 Not Found: no Prefect API at this URL"), orchestration.prefect_api(elsewhere):
        _probe()
