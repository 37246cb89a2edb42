"""Load generators: ``engram bench http`` (see ``engram.bench.http``)."""
