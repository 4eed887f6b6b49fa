"""Fixtures for the anonymization tests: keys and a policy."""

from __future__ import annotations

import pytest

from datamove.anonymize import AnonKey, Policy, parse_policy
from tests.anonymize.helpers import KEY_TEXT, OTHER_KEY_TEXT, POLICY_TEXT


@pytest.fixture
def key() -> AnonKey:
    return AnonKey(KEY_TEXT.encode(), source="test key")


@pytest.fixture
def other_key() -> AnonKey:
    return AnonKey(OTHER_KEY_TEXT.encode(), source="other test key")


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY_TEXT, source="policy.yaml")
