"""The engine: model types, spaces, recall, spreading, decay, dedup, consolidation."""
