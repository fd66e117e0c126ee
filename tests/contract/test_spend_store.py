"""The JobStore's spend contract: caps' places, the ledger, budgets and notices.

Every store runs it (``store`` is each adapter in turn); DynamoDB's access patterns (a
constant number of requests, no scans) are at the end of the file.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from bot.adapters.dynamodb.store import DynamoStore
from bot.domain import JobVersion, NotFound, StaleWrite, Status
from bot.domain.cost import Budget, BudgetPolicy, BudgetScope, Full, LedgerEntry
from bot.ports import JobStore
from tests.contract.conftest import TABLE
from tests.contract.test_job_store import T0, claim, concurrently, draft, start
from tests.contract.test_model_registry import WithoutReturnedItems

PERIODS = ["2026-11", "2026-W48"]
KEYS = ["total", "user:U1", "pool:gpu-1"]
CHARGE: dict[str, Any] = {"charged_usd": 5.0, "charge_periods": PERIODS, "charge_keys": KEYS}


def versions(store: JobStore, n: int) -> list[JobVersion]:
    """Job ``demo`` with ``n`` queued versions."""
    return [start(store), *(store.add_version(draft())[0] for _ in range(n - 1))]


def launched(store: JobStore, version: JobVersion, **kwargs: Any) -> JobVersion:
    claimed = store.claim_launch(claim(version), **kwargs)
    assert isinstance(claimed, JobVersion), claimed
    return claimed


def charged(version: JobVersion, **charge: Any) -> JobVersion:
    return claim(version).model_copy(update=charge or CHARGE)


def end(store: JobStore, version: JobVersion, **fields: Any) -> JobVersion:
    return store.save_version(
        version.transition(Status.FAILED, at=T0).model_copy(update=fields))


def ledger(store: JobStore, period: str = PERIODS[0]) -> dict[str, tuple[float, float, float, int]]:
    return {e.key: (e.committed_usd, e.spent_usd, e.spot_saving_usd, e.versions)
            for e in store.list_ledger(period)}


# -- caps ---------------------------------------------------------------------------------


def test_a_full_cap_refuses_the_claim_and_writes_nothing(store: JobStore) -> None:
    v1, v2, v3 = versions(store, 3)

    held = launched(store, v1, caps={"user:U1": 1})
    refused = store.claim_launch(claim(v2), caps={"user:U1": 1})
    other = store.claim_launch(claim(v3), caps={"user:U2": 1})

    assert held.caps == ["user:U1"] and held == store.get_version("demo", 1)
    assert refused == Full(cap="user:U1", limit=1)
    assert store.get_version("demo", 2) == v2  # unchanged: same revision, no backend name
    assert store.find_by_backend_name(claim(v2).backend_job_name or "") is None
    assert isinstance(other, JobVersion) and other.caps == ["user:U2"]


def test_the_end_gives_the_caps_places_back_once(store: JobStore) -> None:
    v1, v2, v3 = versions(store, 3)
    held = launched(store, v1, slots=2, caps={"user:U1": 1, "channel:C1": 1})

    ended = end(store, held)
    store.save_version(ended.model_copy(update={"failure_reason": "late event"}))

    assert (ended.caps, ended.pool_slot) == ([], False)
    assert launched(store, v2, caps={"user:U1": 1, "channel:C1": 1}).caps == [
        "user:U1", "channel:C1"]
    assert store.claim_launch(claim(v3), caps={"channel:C1": 1}) == Full(
        cap="channel:C1", limit=1)


def test_full_names_the_cap_that_is_full_and_takes_no_other_place(store: JobStore) -> None:
    v1, v2, v3 = versions(store, 3)
    launched(store, v1, slots=2, caps={"user:U1": 2, "channel:C1": 1})

    assert store.claim_launch(claim(v2), slots=2, caps={"user:U1": 2, "channel:C1": 1}) == Full(
        cap="channel:C1", limit=1)
    assert store.claim_launch(claim(v2), slots=1, caps={"user:U1": 2}) == Full(
        cap="pool:cpu-small", limit=1)
    assert store.get_version("demo", 2) == v2
    # The refused claims took no place of user:U1 (one left) nor of the pool (one left).
    second = launched(store, v2, slots=2, caps={"user:U1": 2, "channel:C2": 1})
    assert (second.pool_slot, second.caps) == (True, ["user:U1", "channel:C2"])
    assert store.claim_launch(claim(v3), slots=3, caps={"user:U1": 2}) == Full(
        cap="user:U1", limit=2)


def _claim_of_two(store: JobStore, queued: list[JobVersion], i: int) -> JobVersion | Full:
    return store.claim_launch(claim(queued[i]), caps={"user:U1": 2})


def test_concurrent_claims_take_no_more_places_than_the_cap_has(store: JobStore) -> None:
    start(store)
    for _ in range(3):
        queued = [store.add_version(draft())[0] for _ in range(6)]

        claimed = concurrently(6, partial(_claim_of_two, store, queued))

        winners = [c for c in claimed if isinstance(c, JobVersion)]
        assert len(winners) == 2
        assert [c for c in claimed if not isinstance(c, JobVersion)] == [
            Full(cap="user:U1", limit=2)] * 4
        assert sum("user:U1" in v.caps for v in store.list_active()) == 2
        for won in winners:
            end(store, won)


def test_a_version_holds_only_what_the_store_gave_it(store: JobStore) -> None:
    v1, v2 = versions(store, 2)
    held: dict[str, Any] = {"pool_slot": True, "caps": ["user:U1"], "charged_usd": 9.0,
                            "charge_periods": PERIODS, "charge_keys": KEYS,
                            "charge_settled": True}

    added, _ = store.add_version(draft(**held))
    saved = store.save_version(v1.model_copy(update={**held, "message_ts": "1.1"}))
    ended = end(store, v2.model_copy(update=held))

    for version in (added, saved, ended, store.get_version("demo", 1)):
        assert (version.pool_slot, version.caps, version.charged_usd, version.charge_settled,
                version.charge_keys) == (False, [], None, False, [])
    assert saved.message_ts == "1.1"
    assert store.list_ledger(PERIODS[0]) == []
    assert launched(store, added, slots=1, caps={"user:U1": 1}).caps == ["user:U1"]


# -- the ledger ---------------------------------------------------------------------------


def test_a_launch_commits_its_charge_and_its_end_settles_it_once(store: JobStore) -> None:
    (v1,) = versions(store, 1)

    claimed = store.claim_launch(charged(v1), slots=1)

    assert isinstance(claimed, JobVersion)
    assert (claimed.charged_usd, claimed.charge_settled) == (5.0, False)
    for period in PERIODS:
        assert ledger(store, period) == {k: (5.0, 0.0, 0.0, 0) for k in KEYS}

    ended = end(store, claimed, actual_cost_usd=2.5, spot_saving_usd=1.0)
    late = store.save_version(ended.model_copy(update={"failure_reason": "reported again"}))
    with pytest.raises(StaleWrite):
        end(store, claimed, actual_cost_usd=2.5, spot_saving_usd=1.0)  # a stale report

    assert ended.charge_settled and late.charge_settled and late.charged_usd == 5.0
    for period in PERIODS:
        assert ledger(store, period) == {k: (0.0, 2.5, 1.0, 1) for k in KEYS}


def test_concurrent_reports_of_the_end_settle_it_once(store: JobStore) -> None:
    (v1,) = versions(store, 1)
    claimed = launched(store, charged(v1), caps={"user:U1": 1})

    def report(i: int) -> JobVersion | None:
        try:
            return end(store, claimed, actual_cost_usd=2.5)
        except StaleWrite:
            return None

    assert len([r for r in concurrently(5, report) if r is not None]) == 1
    assert ledger(store)["total"] == (0.0, 2.5, 0.0, 1)


def test_a_refused_claim_charges_nothing(store: JobStore) -> None:
    v1, v2 = versions(store, 2)
    launched(store, charged(v1), slots=1)

    assert store.claim_launch(charged(v2, charged_usd=7.0, charge_periods=PERIODS,
                                       charge_keys=KEYS), slots=1) == Full(
        cap="pool:cpu-small", limit=1)
    assert ledger(store)["total"] == (5.0, 0.0, 0.0, 0)


def test_an_uncharged_version_ends_without_touching_the_ledger(store: JobStore) -> None:
    v1, v2 = versions(store, 2)
    launched(store, charged(v1))

    ended = end(store, launched(store, v2), actual_cost_usd=3.0)

    assert (ended.charged_usd, ended.charge_settled) == (None, False)
    assert ledger(store)["total"] == (5.0, 0.0, 0.0, 0)


def test_counters_add_up_without_float_noise(store: JobStore) -> None:
    queued = versions(store, 3)
    amounts = [0.1, 0.2, 0.3000004]  # the last one is counted as 0.3 (6 decimals)
    claimed = [launched(store, charged(v, charged_usd=usd, charge_periods=PERIODS[:1],
                                       charge_keys=["total"]))
               for v, usd in zip(queued, amounts, strict=True)]
    assert ledger(store)["total"][0] == pytest.approx(0.6, abs=1e-9)

    for version in claimed:
        end(store, version, actual_cost_usd=0.1)

    committed, spent, _, count = ledger(store)["total"]
    assert committed == 0.0 and spent == pytest.approx(0.3, abs=1e-9) and count == 3


def test_ledger_reads_by_key_and_by_dimension(store: JobStore) -> None:
    (v1,) = versions(store, 1)
    launched(store, charged(v1, charged_usd=5.0, charge_periods=PERIODS,
                            charge_keys=[*KEYS, "pool:gpu-2", "pool-user:gpu-1:U1"]))

    got = store.get_ledger(PERIODS[0], ["user:U1", "user:U9"])
    pools = store.list_ledger(PERIODS[0], "pool")

    assert got == {"user:U1": LedgerEntry(period=PERIODS[0], key="user:U1", committed_usd=5.0),
                   "user:U9": LedgerEntry(period=PERIODS[0], key="user:U9")}
    assert [e.key for e in pools] == ["pool:gpu-1", "pool:gpu-2"]
    assert [e.key for e in store.list_ledger(PERIODS[1])] == sorted(
        [*KEYS, "pool:gpu-2", "pool-user:gpu-1:U1"])
    assert store.list_ledger("2026-12") == [] and store.get_ledger("2026-12", []) == {}


# -- budgets ------------------------------------------------------------------------------


def budget(scope: BudgetScope, subject: str, limit: float = 100.0, **kw: Any) -> Budget:
    return Budget(scope=scope, subject=subject, limit_usd=limit, set_by="UADMIN", set_at=T0,
                  **kw)


def test_budgets_are_set_replaced_listed_and_deleted(store: JobStore) -> None:
    user = budget(BudgetScope.USER, "U1")
    channels = [budget(BudgetScope.CHANNEL, s) for s in ("C2", "C1", "C1-b")]
    for b in (user, *channels):
        assert store.put_budget(b) == b
    replaced = store.put_budget(budget(BudgetScope.CHANNEL, "C1", 50.0,
                                       policy=BudgetPolicy.REFUSE))

    assert store.get_budget(BudgetScope.CHANNEL, "C1") == replaced
    assert store.get_budget(BudgetScope.USER, "C1") is None
    assert [(b.scope, b.subject) for b in store.list_budgets()] == [
        (BudgetScope.CHANNEL, "C1"), (BudgetScope.CHANNEL, "C1-b"),
        (BudgetScope.CHANNEL, "C2"), (BudgetScope.USER, "U1")]

    store.delete_budget(BudgetScope.CHANNEL, "C1")
    with pytest.raises(NotFound):
        store.delete_budget(BudgetScope.CHANNEL, "C1")
    assert store.get_budget(BudgetScope.CHANNEL, "C1") is None
    assert len(store.list_budgets()) == 3


# -- notices ------------------------------------------------------------------------------

LEASE = timedelta(minutes=5)
ALERT = "alert:channel:C1:2026-11:80"


def test_a_notice_is_claimed_until_its_lease_ends(store: JobStore) -> None:
    assert store.claim_notice(ALERT, now=T0, lease=LEASE)
    assert not store.claim_notice(ALERT, now=T0 + LEASE - timedelta(seconds=1), lease=LEASE)
    assert store.claim_notice(ALERT, now=T0 + LEASE, lease=LEASE)  # the claimer died
    assert store.claim_notice("digest:C1:2026-W47", now=T0, lease=LEASE)  # keys are apart


def test_a_notice_told_is_never_claimed_again(store: JobStore) -> None:
    assert store.claim_notice(ALERT, now=T0, lease=LEASE)
    store.settle_notice(ALERT, told=True)

    assert not store.claim_notice(ALERT, now=T0, lease=LEASE)
    assert not store.claim_notice(ALERT, now=T0 + timedelta(days=400), lease=LEASE)
    store.settle_notice(ALERT, told=False)  # a late give-back doesn't untell it
    assert not store.claim_notice(ALERT, now=T0 + timedelta(days=400), lease=LEASE)


def test_a_notice_given_back_is_claimed_at_once(store: JobStore) -> None:
    assert store.claim_notice(ALERT, now=T0, lease=LEASE)
    store.settle_notice(ALERT, told=False)

    assert store.claim_notice(ALERT, now=T0, lease=LEASE)


def _claim_notice(store: JobStore, key: str, i: int) -> bool:
    return store.claim_notice(key, now=T0, lease=LEASE)


def test_concurrent_claims_of_a_notice_have_one_winner(store: JobStore) -> None:
    for round_ in range(3):
        key = f"digest:C1:2026-W4{round_}"
        claimed = concurrently(6, partial(_claim_notice, store, key))
        assert sum(claimed) == 1


# -- DynamoDB: a constant number of requests, no scans ------------------------------------


def test_dynamodb_ledger_reads_are_one_request_each(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    (v1,) = versions(store, 1)
    launched(store, charged(v1), slots=1, caps={"user:U1": 1})
    calls.clear()

    store.get_ledger(PERIODS[0], KEYS)
    assert dict(calls) == {"BatchGetItem": 1}
    calls.clear()

    store.list_ledger(PERIODS[0], "pool")
    store.list_ledger(PERIODS[1])
    store.list_budgets()
    assert dict(calls) == {"Query": 3}


def test_dynamodb_a_launch_and_its_end_are_one_transaction_each(dynamodb: Any) -> None:
    client, calls = dynamodb
    store = DynamoStore(TABLE, client=client)
    (v1,) = versions(store, 1)
    calls.clear()

    claimed = launched(store, charged(v1), slots=1, caps={"user:U1": 1})
    end(store, claimed, actual_cost_usd=1.0)

    assert dict(calls) == {"TransactWriteItems": 2}


def test_dynamodb_holdings_are_kept_without_returned_items(dynamodb: Any) -> None:
    client, _ = dynamodb
    store = DynamoStore(TABLE, client=WithoutReturnedItems(client))
    v1, v2 = versions(store, 2)
    claimed = launched(store, charged(v1), slots=1, caps={"user:U1": 1})

    # A copy that claims to hold nothing: the store ends what is stored, once.
    ended = end(store, claimed.model_copy(update={"caps": [], "pool_slot": False,
                                                  "charged_usd": None}), actual_cost_usd=2.0)

    assert (ended.caps, ended.pool_slot, ended.charged_usd, ended.charge_settled) == (
        [], False, 5.0, True)
    assert ledger(store)["total"] == (0.0, 2.0, 0.0, 1)
    assert launched(store, v2, slots=1, caps={"user:U1": 1}).caps == ["user:U1"]


# --- small records by compare-and-set -------------------------------------------------------


def test_a_record_is_written_once_per_revision(store: JobStore) -> None:
    assert store.get_record("top-jobs:2026-11") == (None, 0)
    assert store.put_record("top-jobs:2026-11", {"jobs": [{"subject": "a"}]}, revision=0)
    assert not store.put_record("top-jobs:2026-11", {"jobs": []}, revision=0)  # exists now
    value, revision = store.get_record("top-jobs:2026-11")
    assert value == {"jobs": [{"subject": "a"}]} and revision == 1
    assert store.put_record("top-jobs:2026-11", {"jobs": []}, revision=1)
    assert not store.put_record("top-jobs:2026-11", {"jobs": [1]}, revision=1)  # stale
    assert store.get_record("top-jobs:2026-11") == ({"jobs": []}, 2)


def test_concurrent_record_writes_at_one_revision_let_one_win(store: JobStore) -> None:
    results = concurrently(8, lambda i: store.put_record("r", {"x": i}, revision=0))
    assert sorted(results) == [False] * 7 + [True]
