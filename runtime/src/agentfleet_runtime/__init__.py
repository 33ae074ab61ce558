"""agentfleet runtime: FastAPI service running LangGraph agents that call LLMs through the
official SDKs and tools on MCP servers."""

__version__ = "0.1.0"
