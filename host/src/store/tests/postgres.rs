//! What only the shared PostgreSQL store does: several servers (here, two
//! store instances on one database) acting as the workers of one fleet.
