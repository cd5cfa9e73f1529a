"""The channel table, relay attribution and the relay policy, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from signoff import Forbidden, InvalidInput, Policy
from signoff._channels import ChannelRefused, channel_kind, check_claim, claim_channel, relay_by
from signoff._policy import RelayPolicy, relay_refusal, settle
from signoff.store.contract import make_event


def claim(role: str, channel: str | None, *, bound: tuple[str, ...] = (),
          orchestrator: str = "prefect", owner: str | None = "flow", user: str = "flow") -> str:
    return claim_channel(role, user, check_claim(channel), bound=bound,
                         orchestrator=orchestrator, owner=owner)


@pytest.mark.parametrize(("role", "channel", "recorded"), [
    ("reviewer", None, "api"), ("reviewer", "api", "api"), ("reviewer", "cli", "cli"),
    ("admin", "cli", "cli"), ("workflow", None, "api"), ("workflow", "cli", "cli"),
    ("workflow", "prefect", "prefect"), ("workflow", "prefect-ui", "prefect"),
])
def test_claims_each_role_may_make(role: str, channel: str | None, recorded: str) -> None:
    assert claim(role, channel) == recorded


@pytest.mark.parametrize(("role", "channel", "why"), [
    ("workflow", "temporal", "comes from 'prefect'"),
    ("workflow", "decider:x", "bound to it"),
    ("reviewer", "prefect", "not for reviewer tokens"),
    ("admin", "airflow", "not for admin tokens"),
    ("admin", "decider:x", "bound to it"),
])
def test_claims_refused_say_which_and_why(role: str, channel: str, why: str) -> None:
    with pytest.raises(ChannelRefused, match=why) as refused:
        claim(role, channel)
    assert repr(channel) in str(refused.value) and isinstance(refused.value, Forbidden)


def test_an_engine_claim_needs_the_callers_own_event() -> None:
    with pytest.raises(ChannelRefused, match="own events"):
        claim("workflow", "prefect", owner="other-flow")


@pytest.mark.parametrize("channel", ["web", "policy", "timeout", "sweeper", "fallback", "hub"])
def test_nobody_claims_the_inbox_or_the_hubs_channels(channel: str) -> None:
    with pytest.raises(ChannelRefused, match=repr(channel)):
        check_claim(channel)


@pytest.mark.parametrize("channel", ["Web", "a" * 40, "decider:", "x y", "-x"])
def test_malformed_claims_are_422(channel: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        check_claim(channel)
    assert bad.value.field == "X-Signoff-Channel"


def test_a_bound_token_answers_only_through_its_binding() -> None:
    bound = ("decider:risk",)
    assert claim("reviewer", None, bound=bound) == "decider:risk"
    assert claim("reviewer", "api", bound=bound) == "decider:risk"
    assert claim("reviewer", "decider:risk", bound=bound) == "decider:risk"
    with pytest.raises(ChannelRefused, match="bound to decider:risk"):
        claim("reviewer", "cli", bound=bound)


def test_kinds() -> None:
    assert [channel_kind(c) for c in ("web", "fallback", "decider:x", "argo")] == \
        ["human", "hub", "decider", "engine"]


def test_relay_by_names_the_person_or_says_unverified() -> None:
    assert relay_by("argo", "alice@example.com") == "argo:alice@example.com"
    assert relay_by("prefect", None) == relay_by("prefect", "") == "prefect:unverified"
    for bad in (":x", "a\nb", "x" * 129):
        with pytest.raises(InvalidInput, match="relayed_by"):
            relay_by("argo", bad)


class R:
    def __init__(self, by: str, value: Any, channel: str = "web", verified: bool = True) -> None:
        self.by, self.value, self.channel, self.verified = by, value, channel, verified


def test_unverified_approvals_count_only_when_the_hub_allows() -> None:
    votes = [R("prefect:unverified", True, "prefect", verified=False), R("rita", True)]
    assert settle("approval", Policy(quorum=2), votes) is None
    assert settle("approval", Policy(quorum=2), votes,
                  relays=RelayPolicy(counts_toward_quorum=True)) is not None


def test_the_requesters_own_approval_never_counts_under_four_eyes() -> None:
    votes = [R("flow", True, "cli"), R("rita", True)]
    four_eyes = Policy(quorum=2, forbid_self_approval=True)
    assert settle("approval", four_eyes, votes, requester="flow") is None
    assert settle("approval", Policy(quorum=2), votes, requester="flow") is not None


def test_a_bound_deciders_approval_is_automation() -> None:
    votes = [R("risk-bot", True, "decider:risk"), R("rita", True)]
    assert settle("approval", Policy(quorum=2), votes) is None
    assert settle("approval", Policy(quorum=2, automation_counts=True), votes) is not None


def test_relay_refusal_by_impact_and_four_eyes() -> None:
    relays = RelayPolicy()
    assert relay_refusal(make_event(impact="low"), relays) is None
    assert "high-impact" in (relay_refusal(make_event(impact="high"), relays) or "")
    assert "critical-impact" in (relay_refusal(make_event(impact="critical"), relays) or "")
    four_eyes = make_event(policy=Policy(forbid_self_approval=True))
    assert "self-approval" in (relay_refusal(four_eyes, relays) or "")
    loose = RelayPolicy(satisfies_four_eyes=True, refused_impacts=[])
    assert relay_refusal(four_eyes, loose) is None
    assert relay_refusal(make_event(impact="critical"), loose) is None
