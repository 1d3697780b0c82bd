"""Key rotation: the pending marker (marker), the pure plan (planner), the lease (lease), one
pair written to many targets (publish), and the executor that carries a plan out (executor)."""
