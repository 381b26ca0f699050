"""warren clustering on etcd: membership, leader election, in-sync replica set, definitions.

Self-contained for now: nothing in the single-node server imports this package yet.
The replication hooks attach once the one-publish-pipeline restructuring has landed
(see DESIGN.md beside this file).
"""
