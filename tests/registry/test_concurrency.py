"""Eight processes registering at once get distinct, gap-free version numbers on both databases."""

from __future__ import annotations

import multiprocessing

from modelyard.registry import Database, Registry

PROCESSES = 8
EACH = 50


def register_many(url: str, worker: int) -> list[int]:
    database = Database(url)
    database.open()
    registry = Registry(database, actor=f"worker-{worker}")
    numbers = [
        registry.create_version("fraud", params={"worker": worker, "i": i}).number
        for i in range(EACH)
    ]
    database.close()
    return numbers


def test_concurrent_registration_is_gap_free(database: Database) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        results = pool.starmap(register_many, [(database.url, w) for w in range(PROCESSES)])
    numbers = sorted(n for batch in results for n in batch)
    assert numbers == list(range(1, PROCESSES * EACH + 1))
    registry = Registry(database, actor="check")
    assert registry.get_model("fraud").latest_version == PROCESSES * EACH
    assert registry.verify_audit().ok
    assert len(registry.audit_log()) == 1 + PROCESSES * EACH
