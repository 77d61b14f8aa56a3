//! neonhub: the service and command line that wire the event store, the
//! actors and the projections together.
