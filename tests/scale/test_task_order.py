"""The order the coordinator queues imports in: the workers take tasks in queue order, so one
account's companies must not all come first, or the tasks running at once share one credential's
in-flight cap while the other credentials sit idle."""

from __future__ import annotations

from invoicesync.distributed._coordinator import interleaved
from invoicesync.models import Account, AccountDirection, Company


def _source(name: str, companies: int) -> Account:
    return Account(name=name, plugin="billit", direction=AccountDirection.IMPORT,
                   companies=[Company(id=f"{name}-{n}", name=f"{name} {n}") for n in range(companies)])


def test_imports_take_one_company_of_each_account_in_turn() -> None:
    order = list(interleaved([_source("a", 3), _source("b", 1), _source("c", 2), _source("d", 0)]))
    assert order == [("a", "a-0"), ("b", "b-0"), ("c", "c-0"), ("a", "a-1"), ("c", "c-1"), ("a", "a-2")]


def test_every_company_once() -> None:
    sources = [_source(f"s{n}", n % 4) for n in range(10)]
    assert sorted(interleaved(sources)) == sorted((s.name, c.id) for s in sources for c in s.companies)
    assert list(interleaved([])) == []
