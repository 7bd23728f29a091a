"""The ``vidlm`` argument parser (no command is run)."""

from __future__ import annotations

import pytest

from vidlm.cli import _parse, build_parser


def parse(argv: list[str]):
    return _parse(build_parser(argv), argv)


def test_train_overrides_may_follow_options() -> None:
    before = parse(["train", "c.yaml", "a=1", "--resume"])
    after = parse(["train", "c.yaml", "--resume", "a=1", "b.c=x"])
    assert (before.config, before.overrides, before.resume) == ("c.yaml", ["a=1"], True)
    assert (after.config, after.overrides, after.resume) == ("c.yaml", ["a=1", "b.c=x"], True)


@pytest.mark.parametrize("argv", [["train", "c.yaml", "--bogus"],
                                  ["train", "c.yaml", "--resume", "not-an-override"],
                                  ["probe", "v.mp4", "a=1"]])
def test_unknown_arguments_are_still_an_error(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
