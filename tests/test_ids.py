"""Memory ids stay unique when the application seeds Python's random module, and in a
forked child."""

from __future__ import annotations

import os
import random

from engram.memory import space


def test_ids_ignore_the_applications_random_seed() -> None:
    random.seed(1234)
    first = space._new_id("semantic")
    random.seed(1234)
    second = space._new_id("semantic")
    assert first[-12:] != second[-12:]


def test_a_forked_child_draws_other_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id's random part and leave at once
        os.write(write, space._new_id("semantic")[-12:].encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child) == 12 and child != space._new_id("semantic")[-12:]
