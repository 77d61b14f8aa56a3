//! neonhub's actor runtime: the orchestrator, agents and connectors (filled by the actor runtime issue).
