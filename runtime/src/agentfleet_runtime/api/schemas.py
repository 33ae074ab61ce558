"""Request and response bodies of the REST API (what a client may send vs. what it sees)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_crds.v1alpha1.common import DNS_LABEL
from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.agent.service import MAX_SESSION_METADATA
from agentfleet_runtime.messages import Message
from agentfleet_runtime.state.base import AgentSource, SessionStatus

T = TypeVar("T")


class ItemList[T](BaseModel):
    items: list[T]


class AgentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "helper",
                    "spec": {
                        "systemPrompt": "You are a concise assistant.",
                        "model": {"provider": "fake", "name": "offline"},
                        "tools": [{"mcpServerRef": {"name": "demo"}}],
                    },
                }
            ]
        },
    )

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    spec: AgentSpec = Field(description="The same spec as an Agent manifest's.")


class AgentReplace(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "spec": {
                        "systemPrompt": "You are a terse assistant. Answer in one line.",
                        "model": {"provider": "fake", "name": "offline"},
                        "tools": [{"mcpServerRef": {"name": "demo"}}],
                    }
                }
            ]
        },
    )

    spec: AgentSpec = Field(description="The new spec, whole (as an Agent manifest's).")


class AgentPublic(BaseModel):
    name: str
    namespace: str
    source: AgentSource = Field(
        description="`config` agents come from manifests/operator config and are read-only."
    )
    spec: AgentSpec
    tools: list[str] = Field(description="Names of the tools the agent can call right now.")
    created_at: datetime


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"agent": "demo"}]})

    agent: Annotated[str, Field(min_length=1, max_length=63)]
    title: Annotated[str | None, Field(default=None, max_length=256)]
    metadata: dict[str, str] = Field(default_factory=dict, max_length=MAX_SESSION_METADATA)


class SessionUpdate(BaseModel):
    """A JSON merge patch (RFC 7396) of a session: absent fields stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Billing question", "metadata": {"ticket": "T-42", "draft": None}}
            ]
        },
    )

    title: Annotated[
        str | None, Field(default=None, max_length=256, description="`null` clears the title.")
    ]
    metadata: dict[str, str | None] | None = Field(
        default=None,
        max_length=MAX_SESSION_METADATA,
        description="Keys to set; a `null` value removes that key, `null` for the whole "
        "object removes every key.",
    )


class SessionPublic(BaseModel):
    id: str
    agent: str
    title: str | None
    metadata: dict[str, str]
    status: SessionStatus
    turns: int
    created_at: datetime
    updated_at: datetime


class MessageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"content": "calculate 2*(3+4)"}]}
    )

    content: Annotated[str, Field(min_length=1, max_length=100_000)]
    attachments: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list,
        max_length=10,
        description="Ids of the tenant's artifacts (`POST /sessions/{id}/attachments`) to give "
        "the model with this message: the text of text types, a description of others.",
    )


class MessageList(BaseModel):
    items: list[Message]


class EventList(BaseModel):
    items: list[TurnEvent]
