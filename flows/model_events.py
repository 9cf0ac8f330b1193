"""Prefect events about a model (its input drifted, its outcomes are worse), for automations to act on."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event


def emit_model_event(event: str, model_version: str, payload: dict[str, Any]) -> None:
    """Emit ``event`` with resource ``voxflow.model.<model_version>``; Prefect relates it to the flow run emitting it."""
    emit_event(event=event, resource={"prefect.resource.id": f"voxflow.model.{model_version}", "prefect.resource.name": model_version}, payload=payload)
