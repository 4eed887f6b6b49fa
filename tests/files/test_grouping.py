"""Grouping files into units: sizes, large files, stability under change."""

from __future__ import annotations

import random

import pytest

from datamove.errors import UsageError
from datamove.files import FileGroup, boundary_modulus, group_files

TARGET = 1 << 20


def _files(count: int, seed: int = 1) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    return [
        (f"dir{rng.randint(0, 30)}/file-{i:06d}.jpg", rng.randint(0, 16 << 10), i)
        for i in range(count)
    ]


def _keys(groups: list[FileGroup]) -> set[tuple[tuple[str, int, int], ...]]:
    return {group.files for group in groups}


def test_every_file_in_exactly_one_group_in_path_order() -> None:
    files = _files(5000)
    groups = group_files(files, TARGET, large_threshold=1 << 30)
    flat = [file for group in groups for file in group.files]
    assert flat == sorted(files)
    assert all(group.bytes <= 2 * TARGET for group in groups)


def test_groups_average_about_the_target() -> None:
    files = _files(20000)
    groups = group_files(files, TARGET, large_threshold=1 << 30)
    mean = sum(group.bytes for group in groups) / len(groups)
    # K is rounded down to a power of two: groups average 1/2 to 1 target.
    assert TARGET / 4 < mean <= TARGET * 1.2
    assert len(groups) > 50


def test_large_files_are_groups_of_their_own() -> None:
    files = [*_files(300), ("big/video.mp4", 50 << 20, 0)]
    groups = group_files(files, TARGET, large_threshold=8 << 20)
    large = [group for group in groups if group.large]
    assert [group.files for group in large] == [(("big/video.mp4", 50 << 20, 0),)]
    assert all(size <= 8 << 20 for g in groups if not g.large for _, size, _ in g.files)


@pytest.mark.parametrize("seed", range(40))
def test_inserting_a_file_changes_at_most_two_groups(seed: int) -> None:
    files = _files(6000)
    rng = random.Random(seed)
    modulus = boundary_modulus(files, TARGET, 1 << 30)
    before = group_files(files, TARGET, 1 << 30, modulus=modulus)
    added = (f"dir{rng.randint(0, 30)}/new-{seed}.jpg", rng.randint(0, 16 << 10), 9)
    after = group_files([*files, added], TARGET, 1 << 30, modulus=modulus)
    assert len(before) > 40
    assert len(_keys(after) - _keys(before)) <= 2
    assert len(_keys(before) - _keys(after)) <= 2


@pytest.mark.parametrize("seed", range(20))
def test_changing_or_removing_a_file_changes_at_most_two_groups(seed: int) -> None:
    files = _files(6000)
    rng = random.Random(seed)
    before = group_files(files, TARGET, 1 << 30)
    index = rng.randrange(len(files))
    changed = list(files)
    path, size, _ = changed[index]
    changed[index] = (path, size + 100, 12345)
    after = group_files(changed, TARGET, 1 << 30)
    assert len(_keys(before) - _keys(after)) == 1
    removed = files[:index] + files[index + 1 :]
    after = group_files(removed, TARGET, 1 << 30)
    assert len(_keys(after) - _keys(before)) <= 2


def test_modulus_is_a_power_of_two_from_the_mean_size() -> None:
    files = [(f"f{i}", 1000, 0) for i in range(100)]
    assert boundary_modulus(files, 1_000_000, 1 << 30) == 512
    assert boundary_modulus([("a", 0, 0)], 1_000_000, 1 << 30) == 1 << 19
    assert boundary_modulus([], 1_000_000, 1 << 30) == 1


def test_empty_files_still_form_bounded_groups() -> None:
    files = [(f"e{i:05d}", 0, 0) for i in range(3000)]
    groups = group_files(files, TARGET, 1 << 30)
    assert sum(len(group.files) for group in groups) == 3000


def test_non_positive_target_is_refused() -> None:
    with pytest.raises(UsageError, match="must be positive"):
        group_files([("a", 1, 0)], 0)


def test_digest_follows_the_fingerprints() -> None:
    one = FileGroup((("a", 1, 5),))
    assert one.digest() == FileGroup((("a", 1, 5),)).digest()
    assert one.digest() != FileGroup((("a", 1, 6),)).digest()
