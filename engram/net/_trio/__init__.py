"""trio drivers: the only code of the cluster that touches sockets and the clock."""
