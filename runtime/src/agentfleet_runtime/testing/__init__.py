"""First-class fakes and helpers for testing against agentfleet's real parts: servers on
free ports, the fake model provider. Used by the project's tests and by users' own."""
