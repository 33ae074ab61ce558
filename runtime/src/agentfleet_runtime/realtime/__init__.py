"""Real-time delivery to clients: WebSocket connections (bounded send queues, heartbeat,
subscriptions to several sessions) and the graceful-shutdown drain."""
