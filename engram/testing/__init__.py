"""Testing tools that may import everything: the deterministic cluster simulator
(``python -m engram.testing.sim --seed N``) and its checkers."""
