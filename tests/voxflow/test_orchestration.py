from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings

from voxflow import orchestration
from voxflow.settings import Settings


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
