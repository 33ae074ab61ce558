"""The Redis checkpointer against LangGraph's own InMemorySaver: same graph, same
observable behaviour (state, history, pending writes, resuming a failed run)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from agentfleet_runtime.state.factory import StateBackend


def _add(left: list[str], right: list[str]) -> list[str]:
    return [*left, *right]


class S(TypedDict):
    log: Annotated[list[str], _add]
    fail: bool


async def step_a(state: S) -> dict[str, Any]:
    return {"log": ["a"]}


async def step_b(state: S) -> dict[str, Any]:
    if state["fail"]:
        raise RuntimeError("b failed")
    return {"log": ["b"]}


def graph(saver: BaseCheckpointSaver[Any]) -> Any:
    g = StateGraph(S)
    g.add_node("a", step_a)
    g.add_node("b", step_b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g.compile(checkpointer=saver)


def cfg(thread: str, **meta: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "metadata": meta}


async def test_state_history_and_metadata(backend: StateBackend) -> None:
    g = graph(backend.checkpointer)
    await g.ainvoke({"log": ["in"], "fail": False}, cfg("t1", turn_id="T1"))
    await g.ainvoke({"log": ["in2"], "fail": False}, cfg("t1", turn_id="T2"))
    state = await g.aget_state(cfg("t1"))
    assert state.values["log"] == ["in", "a", "b", "in2", "a", "b"]
    assert state.next == ()
    assert state.metadata["turn_id"] == "T2"
    history = [s async for s in g.aget_state_history(cfg("t1"))]
    assert len(history) == 8  # (input + 3 steps) x 2
    ids = [h.config["configurable"]["checkpoint_id"] for h in history]
    assert ids == sorted(ids, reverse=True)
    limited = [c async for c in backend.checkpointer.alist(cfg("t1"), limit=3)]
    assert len(limited) == 3
    before = [c async for c in backend.checkpointer.alist(cfg("t1"), before=history[1].config)]
    assert len(before) == 6
    filtered = [c async for c in backend.checkpointer.alist(cfg("t1"), filter={"turn_id": "T1"})]
    assert len(filtered) == 4
    other = await g.aget_state(cfg("t2"))
    assert other.values == {}


async def test_a_failed_run_resumes_from_its_last_checkpoint(backend: StateBackend) -> None:
    g = graph(backend.checkpointer)
    with pytest.raises(RuntimeError):
        await g.ainvoke({"log": ["in"], "fail": True}, cfg("t"))
    state = await g.aget_state(cfg("t"))
    assert state.next == ("b",)
    assert state.values["log"] == ["in", "a"]
    await g.aupdate_state(cfg("t"), {"fail": False})
    await g.ainvoke(None, cfg("t"))  # continue: "a" is not run again
    assert (await g.aget_state(cfg("t"))).values["log"] == ["in", "a", "b"]


async def test_delete_thread(backend: StateBackend) -> None:
    g = graph(backend.checkpointer)
    await g.ainvoke({"log": [], "fail": False}, cfg("gone"))
    await g.ainvoke({"log": [], "fail": False}, cfg("kept"))
    await backend.checkpointer.adelete_thread("gone")
    assert (await g.aget_state(cfg("gone"))).values == {}
    assert (await g.aget_state(cfg("kept"))).values["log"] == ["a", "b"]


async def test_put_writes_are_pending_until_the_next_checkpoint(backend: StateBackend) -> None:
    saver = backend.checkpointer
    g = graph(saver)
    await g.ainvoke({"log": [], "fail": False}, cfg("w"))
    latest = await saver.aget_tuple(cfg("w"))
    assert latest is not None
    await saver.aput_writes(latest.config, [("log", ["x"]), ("fail", False)], "task-1", "p")
    await saver.aput_writes(latest.config, [("log", ["ignored"])], "task-1", "p")
    again = await saver.aget_tuple(latest.config)
    assert again is not None
    assert again.pending_writes == [("task-1", "log", ["x"]), ("task-1", "fail", False)]


async def test_pruning_keeps_the_newest_checkpoint_and_the_state(backend: StateBackend) -> None:
    """What the AgentService does after each turn: older checkpoints (each with its own
    copy of the conversation) go; the state, the other threads and the next run do not
    change."""
    g = graph(backend.checkpointer)
    for turn in ("T1", "T2", "T3"):
        await g.ainvoke({"log": [turn], "fail": False}, cfg("t1", turn_id=turn))
    await g.ainvoke({"log": ["x"], "fail": False}, cfg("t2"))
    before = await g.aget_state(cfg("t1"))

    await backend.checkpointer.aprune(["t1"], strategy="keep_latest")

    history = [s async for s in g.aget_state_history(cfg("t1"))]
    assert len(history) == 1
    assert history[0].values == before.values
    assert history[0].metadata["turn_id"] == "T3"
    assert len([s async for s in g.aget_state_history(cfg("t2"))]) == 4  # untouched
    await g.ainvoke({"log": ["T4"], "fail": False}, cfg("t1", turn_id="T4"))
    state = await g.aget_state(cfg("t1"))
    assert state.values["log"] == [*before.values["log"], "T4", "a", "b"]

    await backend.checkpointer.aprune(["t1"], strategy="delete")
    assert (await g.aget_state(cfg("t1"))).values == {}
