"""HTTP: the management API and dashboard, and the Prometheus endpoint."""
