"""process/memory.py and launch.py: when previewer starts again with its malloc tunables, and
with which."""

from __future__ import annotations

from pathlib import Path

import pytest

from previewer.config.settings import SERVE, WORKER
from previewer.launch import LONG_RUNNING, command_of
from previewer.process import memory

OURS = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576"
GLIBC = (2, 36)


def test_on_a_madvise_kernel_the_three_settings_become_tunables() -> None:
    environ = {"PATH": "/usr/bin", "PREVIEWER_PORT": "8080"}
    restarted = memory.restart_environment(environ, "madvise", GLIBC)
    assert restarted == {**environ, "GLIBC_TUNABLES": OURS, memory.STARTED_AGAIN: "1"}
    assert environ == {"PATH": "/usr/bin", "PREVIEWER_PORT": "8080"}  # not changed in place


def test_tunables_of_other_namespaces_are_kept_in_front() -> None:
    environ = {"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=4096"}
    restarted = memory.restart_environment(environ, "madvise", GLIBC)
    assert restarted is not None
    assert restarted["GLIBC_TUNABLES"] == f"glibc.rtld.optional_static_tls=4096:{OURS}"


@pytest.mark.parametrize("name", memory.GLIBC_MALLOC_VARIABLES)
def test_a_malloc_variable_of_the_operator_means_no_start_again(name: str) -> None:
    assert memory.restart_environment({name: "4"}, "madvise", GLIBC) is None
    assert memory.set_by_environment({name: "4"})


@pytest.mark.parametrize(
    "tunables",
    ["glibc.malloc.hugetlb=0", "glibc.rtld.x=1:glibc.malloc.arena_max=8", OURS],
)
def test_malloc_tunables_already_set_mean_no_start_again(tunables: str) -> None:
    # the operator's own, or previewer's after it started again: no loop either way
    assert memory.restart_environment({"GLIBC_TUNABLES": tunables}, "madvise", GLIBC) is None
    assert memory.set_by_environment({"GLIBC_TUNABLES": tunables})


def test_a_privileged_process_does_not_start_again() -> None:
    # its loader ignores or drops GLIBC_TUNABLES: mallopt sets what it can instead
    assert memory.restart_environment({}, "madvise", GLIBC, secure=True) is None


def test_this_test_process_is_not_privileged() -> None:
    assert memory.privileged() is False


def test_a_process_that_started_again_never_starts_again() -> None:
    # whatever the loader made of GLIBC_TUNABLES, the mark holds
    restarted = memory.restart_environment({}, "madvise", GLIBC)
    assert restarted is not None
    dropped = {k: v for k, v in restarted.items() if k != "GLIBC_TUNABLES"}
    assert memory.restart_environment(dropped, "madvise", GLIBC) is None
    assert not memory.set_by_environment(dropped)  # so mallopt applies the settings


def test_other_tunables_alone_do_not_count_as_malloc_settings() -> None:
    assert not memory.set_by_environment({"GLIBC_TUNABLES": "glibc.rtld.x=1"})
    assert not memory.set_by_environment({})


@pytest.mark.parametrize("thp", ["always", "never", None])
def test_only_a_madvise_kernel_is_worth_starting_again_for(thp: str | None) -> None:
    # always: huge pages come unasked; never: there are none; None: unknown
    assert memory.restart_environment({}, thp, GLIBC) is None


@pytest.mark.parametrize("glibc", [(2, 34), (1, 99), None])
def test_a_glibc_without_the_huge_page_tunable_is_left_alone(
    glibc: tuple[int, int] | None,
) -> None:
    assert memory.restart_environment({}, "madvise", glibc) is None


def test_the_first_glibc_with_the_tunable_gets_it() -> None:
    assert memory.restart_environment({}, "madvise", memory.HUGETLB_SINCE) is not None


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always madvise [never]\n", "never"),
        ("always madvise never\n", None),
        ("", None),
    ],
)
def test_the_kernels_huge_page_mode_is_the_bracketed_word(
    tmp_path: Path, text: str, mode: str | None
) -> None:
    path = tmp_path / "enabled"
    path.write_text(text)
    assert memory.thp_mode(path) == mode


def test_a_kernel_without_transparent_huge_pages_has_no_mode(tmp_path: Path) -> None:
    assert memory.thp_mode(tmp_path / "absent") is None


def test_this_c_library_reports_a_version() -> None:
    version = memory.glibc_version()
    assert version is not None
    assert version >= (2, 0)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["serve", "--port", "0"], "serve"),
        (["worker", "--broker", "amqp://x"], "worker"),
        (["--version"], None),
        ([], None),
        (["sign", "/fill/1/1/a/b.jpg"], "sign"),
    ],
)
def test_the_command_word_is_the_first_word_that_is_not_an_option(
    args: list[str], command: str | None
) -> None:
    assert command_of(args) == command


def test_the_long_running_commands_are_the_configs_serve_and_worker() -> None:
    assert LONG_RUNNING == (SERVE, WORKER)
