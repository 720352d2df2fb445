"""The ExecutionQueries contract: the awaited reads answer as the read model they read.

A test module subclasses `ExecutionQueriesContract` and provides the `new_queries` fixture:
a factory of (read model, queries over that model's storage) pairs, fresh and empty. The
events are written through the read model (as the projections role does); every answer is
then asked of both and must agree."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from codeexec.domain.events import RejectionReason
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel
from codeexec.testing.read_model import T0, Story, apply_all

NewQueries = Callable[[], tuple[ExecutionReadModel, ExecutionQueries]]


def _populated(new_queries: NewQueries) -> tuple[ExecutionReadModel, ExecutionQueries, Story]:
    model, queries = new_queries()
    story = Story()
    done = story.finished("alice", 0)
    queued = story.request("alice", 10, language="ruby")
    queued.queue(story.at(11), 1)
    refused = story.request("alice", 20)
    refused.reject(story.at(21), RejectionReason.RATE_LIMITED, "slow down")
    others = [story.request("bob", t) for t in range(5)]
    apply_all(model, story.record(done, queued, refused, *others))
    return model, queries, story


class ExecutionQueriesContract:
    async def test_a_view_is_the_read_models(self, new_queries: NewQueries) -> None:
        model, queries, story = _populated(new_queries)
        for _, event in story.events:
            assert await queries.get(event.execution_id) == model.get(event.execution_id)
        assert await queries.get(uuid.uuid4()) is None

    async def test_listings_and_pages_are_the_read_models(self, new_queries: NewQueries) -> None:
        model, queries, _ = _populated(new_queries)
        asked = [
            ExecutionQuery(limit=100),
            ExecutionQuery(user_id="alice"),
            ExecutionQuery(user_id="bob", limit=2),
            ExecutionQuery(user_id="alice", statuses=frozenset({"succeeded", "queued"})),
            ExecutionQuery(user_id="alice", language="ruby"),
            ExecutionQuery(created_after=T0 + timedelta(seconds=5)),
            ExecutionQuery(user_id="carol"),
        ]
        for query in asked:
            page = await queries.list(query)
            assert page == model.list(query)
            if page.next_cursor is not None:
                following = ExecutionQuery(user_id=query.user_id, cursor=page.next_cursor)
                assert await queries.list(following) == model.list(following)
        assert [v.id for v in await queries.list_all()] == [v.id for v in model.list_all()]

    async def test_counts_and_admissions_figures_are_the_read_models(
        self, new_queries: NewQueries
    ) -> None:
        model, queries, _ = _populated(new_queries)
        assert await queries.counts() == model.counts()
        assert await queries.status_counts() == model.status_counts()
        assert (await queries.status_counts()).get("rejected") == 1
        for user in ("alice", "bob", "carol"):
            for rate_s, storage_s in ((-1, -1), (5, -1), (-1, 15), (30, 30)):
                rate, storage = T0 + timedelta(seconds=rate_s), T0 + timedelta(seconds=storage_s)
                got = await queries.submission_totals(user, rate, storage)
                assert got == model.submission_totals(user, rate, storage)
                # A bound is the read model's own, or none where the queries keep none.
                bound = await queries.submission_bound(user, rate, storage)
                assert bound is None or bound == model.submission_bound(user, rate, storage)
            since = T0 - timedelta(seconds=1)
            assert await queries.recent_submissions(user, since) == list(
                model.recent_submissions(user, since)
            )

    async def test_what_the_projection_writes_next_is_read_at_once(
        self, new_queries: NewQueries
    ) -> None:
        model, queries = new_queries()
        story = Story()
        execution = story.request("alice")
        apply_all(model, story.record(execution))
        assert (await queries.counts()) == {"requested": 1}
        execution.queue(story.at(1), 1)
        apply_all(model, story.record(execution))
        view = await queries.get(execution.id)
        assert view is not None and view.state == "queued"
        assert (await queries.counts()) == {"queued": 1}

    async def test_ping_answers(self, new_queries: NewQueries) -> None:
        _, queries = new_queries()
        await queries.ping()
