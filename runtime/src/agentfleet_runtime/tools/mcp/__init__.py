"""MCP on the client side (:mod:`.client`: ``MCPToolServer``) and the bundled demo server
(:mod:`.demo_server`)."""
