"""Shared test data: keys, a policy and a table of fake customers."""

from __future__ import annotations

import datetime
import random

import pyarrow as pa
from faker import Faker

KEY_TEXT = "k3y-For-Tests-0123456789-abcdefghijklmnop"
OTHER_KEY_TEXT = "another-Test-Key-9876543210-zyxwvutsrqpo"

POLICY_TEXT = """\
default: fail
quasi_identifiers: [zip, birth_date]
k: 3
columns:
  email: {action: hash, length: 24, prefix: "em_", normalize: [trim, lower]}
  card_number: {action: mask, keep_last: 4}
  phone: {action: mask, keep_first: 3, char: "#"}
  notes: {action: redact, value: "[removed]"}
  birth_date: {action: generalize, to: year}
  amount: {action: generalize, bin: 100}
  zip: {action: generalize, prefix: 3}
  ip: {action: generalize, ipv4: 24}
  balance: {action: noise, scale: 10.0, seed: keyed}
  ssn: drop
  customer_id: keep
"""


def customers(seed: int, rows: int = 200) -> pa.Table:
    """Fake customers with realistic personal data (seeded, deterministic)."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return pa.table(
        {
            "customer_id": pa.array(range(seed * 10_000, seed * 10_000 + rows)),
            "email": [fake.email() for _ in range(rows)],
            "card_number": [fake.credit_card_number() for _ in range(rows)],
            "phone": [fake.phone_number() for _ in range(rows)],
            "notes": [
                fake.sentence() if rng.random() < 0.7 else None for _ in range(rows)
            ],
            "birth_date": pa.array(
                [
                    fake.date_of_birth(minimum_age=18, maximum_age=90)
                    for _ in range(rows)
                ],
                pa.date32(),
            ),
            "amount": pa.array(
                [rng.randrange(0, 5000) for _ in range(rows)], pa.int64()
            ),
            "zip": [fake.zipcode() for _ in range(rows)],
            "ip": [fake.ipv4() for _ in range(rows)],
            "balance": [round(rng.uniform(0, 10_000), 2) for _ in range(rows)],
            "ssn": [fake.ssn() for _ in range(rows)],
            "signup": pa.array(
                [
                    datetime.date(2025, 1, 1) + datetime.timedelta(days=i)
                    for i in range(rows)
                ],
                pa.date32(),
            ),
        }
    )
