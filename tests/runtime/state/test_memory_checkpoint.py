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


async def test_pruning_frees_the_older_conversations() -> None:
    saver = memory_checkpointer()
    config = _config("long")
    messages: list[dict[str, str]] = []
    for turn in range(1, 21):
        messages = [*messages, {"role": "user", "content": f"turn {turn}"}]
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": messages, "steps": 7}
        checkpoint["channel_versions"] = {"messages": turn, "steps": 1}
        # "steps" is written once and stays referenced by every later checkpoint.
        changed = {"messages": turn, "steps": 1} if turn == 1 else {"messages": turn}
        stored = await saver.aput(config, checkpoint, {"source": "loop", "step": turn}, changed)
        config = {"configurable": {**stored["configurable"], "checkpoint_ns": ""}}
        await saver.aput_writes(config, [("messages", "pending")], task_id=f"task-{turn}")
    assert len(saver.blobs) == 21

    await saver.aprune(["long"])

    assert len(saver.storage["long"][""]) == 1
    assert sorted(k[2:] for k in saver.blobs) == [("messages", 20), ("steps", 1)]
    assert [k[2] for k in saver.writes] == [config["configurable"]["checkpoint_id"]]
    latest = await saver.aget_tuple(_config("long"))
    assert latest is not None
    assert len(latest.checkpoint["channel_values"]["messages"]) == 20
    assert latest.checkpoint["channel_values"]["steps"] == 7
