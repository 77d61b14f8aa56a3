//! neonhub's projections: the AgentRun audit table and metrics (filled by the projections issue).
