"""Storage: WAL segments with group commit, checkpoints, the directory lock."""
