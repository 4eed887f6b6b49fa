"""A labelled dataset of realistic personal data, generated with faker."""

from __future__ import annotations

import datetime
import functools
import random
from collections.abc import Callable

import pyarrow as pa
from faker import Faker

TODAY = datetime.date(2026, 1, 15)
IBAN_LOCALES = ["de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES", "it_IT"]
PHONE_LOCALES = ["en_US", "en_US", "en_GB", "de_DE", "fr_FR"]


def _card(fake: Faker, rng: random.Random) -> str:
    number = str(fake.credit_card_number())
    if rng.random() < 0.3 and len(number) == 16:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _email(fake: Faker, rng: random.Random) -> str:
    email = str(fake.email())
    return email.upper() if rng.random() < 0.1 else email


@functools.cache
def _faker(locales: tuple[str, ...]) -> Faker:
    return Faker(list(locales))


def positive_generators(
    fake: Faker, rng: random.Random
) -> dict[str, Callable[[], object]]:
    ibans = _faker(tuple(IBAN_LOCALES))
    ibans.seed_instance(rng.randrange(2**31))
    phones = _faker(tuple(PHONE_LOCALES))
    phones.seed_instance(rng.randrange(2**31))
    return {
        "email": lambda: _email(fake, rng),
        "phone": lambda: phones.phone_number(),
        "credit_card": lambda: _card(fake, rng),
        "ssn": lambda: fake.ssn(),
        "iban": lambda: ibans.iban(),
        "ipv4": lambda: fake.ipv4(),
        "ipv6": lambda: fake.ipv6(),
        "date_of_birth": lambda: fake.date_of_birth(
            minimum_age=18, maximum_age=90
        ).isoformat(),
    }


def negative_generators(
    fake: Faker, rng: random.Random
) -> dict[str, Callable[[], object]]:
    return {
        "name": fake.name,
        "address": fake.address,
        "company": fake.company,
        "uuid": lambda: str(fake.uuid4()),
        "id10": lambda: str(rng.randrange(10**9, 10**10)),
        "id12": lambda: str(rng.randrange(10**11, 10**12)),
        "id16": lambda: str(rng.randrange(10**15, 10**16)),
        "amount": lambda: f"{rng.uniform(-1000, 100000):.2f}",
        "product_code": lambda: fake.bothify("??-####-??").upper(),
        "isbn": fake.isbn13,
        "ean": fake.ean13,
        "order_date": lambda: fake.date_between(
            datetime.date(2024, 1, 1), TODAY
        ).isoformat(),
        "clock": lambda: fake.time(),
        "mac": fake.mac_address,
        "sha1": fake.sha1,
        "sentence": fake.sentence,
        "url": fake.url,
        "zip": fake.zipcode,
        "zip4": fake.zipcode_plus4,
        "plate": fake.license_plate,
        "version": lambda: (
            f"{rng.randrange(10)}.{rng.randrange(20)}.{rng.randrange(50)}"
        ),
        "country": fake.country_code,
        "user": fake.user_name,
        "path": fake.file_path,
        "float": lambda: str(rng.gauss(0, 1e6)),
    }


def dirty(values: list[object], rng: random.Random) -> list[object]:
    """Sprinkle nulls, blanks and junk over ``values`` (about 8%)."""
    junk: list[object] = [None, "", "n/a", "unknown", "  "]
    return [rng.choice(junk) if rng.random() < 0.08 else v for v in values]


def labelled_table(
    seed: int, rows: int = 300
) -> tuple[pa.Table, dict[str, str | None]]:
    """A table of neutrally named columns and the true PII type of each."""
    rng = random.Random(seed)
    fake = _faker(("en_US",))
    fake.seed_instance(seed)
    columns: dict[str, list[object]] = {}
    labels: dict[str, str | None] = {}
    for number, (label, make) in enumerate(positive_generators(fake, rng).items()):
        name = f"p{number}"
        columns[name] = dirty([make() for _ in range(rows)], rng)
        labels[name] = label
    for number, (_, make) in enumerate(negative_generators(fake, rng).items()):
        name = f"n{number}"
        columns[name] = dirty([make() for _ in range(rows)], rng)
        labels[name] = None
    table = pa.table(
        {name: pa.array(values, pa.string()) for name, values in columns.items()}
    )
    return table, labels
