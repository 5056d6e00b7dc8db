"""Board and variant files: they load, their memory maps are sane, bad names are clear errors."""
import pytest

from conftest import ROOT
from tinykiln import KilnError, boards

BOARDS = boards.board_names(ROOT)
VARIANTS = boards.variant_names(ROOT)


def applicable(board):
    return [v for v in VARIANTS if boards.load_variant(ROOT, v).applies_to(board)]


@pytest.mark.parametrize("name", BOARDS)
def test_board_loads_with_non_overlapping_regions(name):
    b = boards.load_board(ROOT, name)
    assert b.core and b.clock_hz > 0 and b.flash_methods
    regions = sorted(b.memory, key=lambda r: r.origin)
    for a, c in zip(regions, regions[1:]):
        assert a.end <= c.origin, f"{a.name} overlaps {c.name}"
    for v in applicable(name):
        t = boards.resolve(ROOT, name, v)
        if not b.is_host:
            script = boards.memory_script(t)
            for role in boards.PLACEMENT_ROLES:
                assert t.placement[role] in [r.name for r in b.memory]
            assert "REGION_WEIGHTS" in script and "REGION_ACT" in script


def test_unknown_board_suggests_closest():
    with pytest.raises(KilnError) as e:
        boards.resolve(ROOT, "mps2-an50", "release")
    msg = str(e.value)
    assert "unknown board 'mps2-an50'" in msg and "Did you mean 'mps2-an500'" in msg
    assert all(b in msg for b in BOARDS)


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(KilnError) as e:
        boards.resolve(ROOT, "host", "relase")
    assert "Did you mean 'release'" in str(e.value)
    assert all(v in str(e.value) for v in VARIANTS)


def test_scons_reports_unknown_board_and_variant(scons):
    r = scons("board=nucleo-f746", timeout=120)
    assert r.returncode != 0
    assert "kiln: error: unknown board 'nucleo-f746'" in r.output
    assert "Traceback" not in r.output
    r = scons("variant=fastest", timeout=120)
    assert r.returncode != 0 and "unknown variant 'fastest'" in r.output


def test_help_lists_options_boards_and_variants(scons):
    r = scons("-h", timeout=120)
    assert r.returncode == 0, r.output
    for word in ["board=", "variant=", "model=", "run=", "flash=", "flasher=", "port="] + BOARDS + VARIANTS:
        assert word in r.output
