"""The memory backend's checkpointer keeps objects instead of bytes: what it stores and
what it hands out must still be isolated from later in-place changes on either side."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from agentfleet_runtime.state.memory_checkpoint import memory_checkpointer


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


async def test_stored_values_do_not_change_with_the_caller_s_objects() -> None:
    saver = memory_checkpointer()
    checkpoint = empty_checkpoint()
    messages = [{"role": "user", "content": "hi"}]
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": 1}
    checkpoint["versions_seen"] = {"model": {"messages": 1}}
    await saver.aput(_config("t"), checkpoint, {"source": "loop", "step": 1}, {"messages": 1})

    # The graph goes on changing its own objects in place after the write...
    messages.append({"role": "assistant", "content": "later"})
    checkpoint["channel_versions"]["messages"] = 2
    checkpoint["versions_seen"]["model"]["messages"] = 2

    loaded = await saver.aget_tuple(_config("t"))
    assert loaded is not None
    assert loaded.checkpoint["channel_values"]["messages"] == [{"role": "user", "content": "hi"}]
    assert loaded.checkpoint["channel_versions"] == {"messages": 1}
    assert loaded.checkpoint["versions_seen"] == {"model": {"messages": 1}}
    assert loaded.metadata["step"] == 1

    # ...and changes made to what was handed out do not reach the saver either.
    loaded.checkpoint["channel_values"]["messages"].append({"role": "user", "content": "x"})
    loaded.checkpoint["versions_seen"]["model"]["messages"] = 9
    again = await saver.aget_tuple(_config("t"))
    assert again is not None
    assert len(again.checkpoint["channel_values"]["messages"]) == 1
    assert again.checkpoint["versions_seen"] == {"model": {"messages": 1}}
