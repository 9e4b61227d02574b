"""A sweep reads the RUNNING tasks page by page and says whether it saw all of them."""

from __future__ import annotations

from runner.engine.tracker import running_tasks
from runner.engine.wire import ListedTask, TaskPage


def pages(statuses: list[str], size: int) -> dict[int, TaskPage]:
    items = [ListedTask(f"t{i}", st, "wan2.6-t2v", i, None, None) for i, st in enumerate(statuses)]
    chunks = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    return {n: TaskPage(items=chunk, total=len(items), page_no=n, page_size=size) for n, chunk in enumerate(chunks, 1)}


async def test_every_page_is_read_until_the_last() -> None:
    book = pages(["RUNNING"] * 5 + ["SUCCEEDED"], size=2)  # a server may answer other statuses: ignored
    asked: list[int] = []

    async def fetch(page_no: int) -> TaskPage:
        asked.append(page_no)
        return book[page_no]

    running, complete = await running_tasks(fetch)
    assert asked == [1, 2, 3]
    assert running == {f"t{i}" for i in range(5)} and complete


async def test_an_empty_list_is_complete() -> None:
    book = pages([], size=100)

    async def fetch(page_no: int) -> TaskPage:
        return book[page_no]

    assert await running_tasks(fetch) == (set(), True)


async def test_past_max_pages_the_answer_is_incomplete() -> None:
    book = pages(["RUNNING"] * 7, size=2)

    async def fetch(page_no: int) -> TaskPage:
        return book[page_no]

    running, complete = await running_tasks(fetch, max_pages=2)
    assert running == {"t0", "t1", "t2", "t3"} and not complete
