"""Protocol cores of the cluster: sans-IO state machines (bytes and events in, bytes and
events out, ``now_ms`` passed in, randomness injected). Nothing here except ``_trio/``
may import trio, socket, time or asyncio; ``tests/test_layering.py`` enforces it."""
