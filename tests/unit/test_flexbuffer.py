"""The FlexBuffer map reader of custom_options (tinykiln.tflite.flexbuffer): the values the flatbuffers
package's builder writes read back as its own reader reads them; corrupt bytes raise FlexError only."""
from __future__ import annotations

import numpy as np
import pytest
from flatbuffers import flexbuffers

from modelgen import flexbuffer_map
from tinykiln.tflite.flexbuffer import FlexError, read_map

VALUES = {"max_detections": 10, "max_classes_per_detection": 1, "use_regular_nms": False,
          "nms_iou_threshold": 0.6, "y_scale": 10.0, "negative": -3, "big": 1 << 40, "tiny": 1e-30}


def test_reads_what_the_builder_writes():
    data = flexbuffer_map(VALUES)
    assert read_map(data) == flexbuffers.Loads(data) == VALUES


def test_indirect_and_unsigned_values():
    fbb = flexbuffers.Builder()
    with fbb.Map():
        fbb.IndirectInt("a", -7)
        fbb.IndirectUInt("b", 300)
        fbb.IndirectFloat("c", 2.5)
        fbb.UInt("d", 200)
        fbb.String("name", "ssd")  # not a scalar: None
    data = bytes(fbb.Finish())
    assert read_map(data) == {"a": -7, "b": 300, "c": 2.5, "d": 200, "name": None}


@pytest.mark.parametrize("data, reason", [
    (b"", "only 0 bytes"),
    (flexbuffers.Dumps([1, 2]), "not a map"),
    (flexbuffer_map(VALUES)[:-9] + flexbuffer_map(VALUES)[-2:], "outside|fit|differ|width|NUL|not a map"),
])
def test_refuses_what_is_not_a_map(data, reason):
    with pytest.raises(FlexError, match=reason):
        read_map(data)


def test_corrupt_bytes_raise_flexerror_only():
    good = bytearray(flexbuffer_map(VALUES))
    rng = np.random.default_rng(0)
    for _ in range(2000):
        bad = bytearray(good)
        for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 4))):
            bad[pos] = int(rng.integers(0, 256))
        if rng.integers(2):
            bad = bad[int(rng.integers(0, len(bad))):]
        try:
            read_map(bytes(bad))
        except FlexError:
            pass
