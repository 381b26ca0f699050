"""The replication link: a leader streams its stores' operations to followers (see DESIGN.md §10)."""
