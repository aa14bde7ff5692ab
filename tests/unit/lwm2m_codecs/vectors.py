"""Golden vectors from the OMA LwM2M Technical Specification's examples.

The Device object read (/3/0) as TLV, 1.0 JSON and SenML JSON, and the multiple object
instance example (Access Control object, /2), shared by the codec tests.
"""

from __future__ import annotations

from reconciler.lwm2m.codecs import Value
from reconciler.model.lwm2m import Path


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# OMA-TS-LightweightM2M (1.0 section 6.4.3.1; 1.1 Transport 7.4.3): Read /3/0 as TLV.
DEVICE_TLV = h(
    """
    C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
    C8 02 09 33 34 35 30 30 30 31 32 33
    C3 03 31 2E 30
    86 06 41 00 01 41 01 05
    88 07 08 42 00 0E D8 42 01 13 88
    87 08 41 00 7D 42 01 03 84
    C1 09 64
    C1 0A 0F
    83 0B 41 00 00
    C4 0D 51 82 42 8F
    C6 0E 2B 30 32 3A 30 30
    C1 10 55
    """
)

DEVICE_VALUES: dict[Path, Value] = {
    Path(3, 0, 0): "Open Mobile Alliance",
    Path(3, 0, 1): "Lightweight M2M Client",
    Path(3, 0, 2): "345000123",
    Path(3, 0, 3): "1.0",
    Path(3, 0, 6, 0): 1,
    Path(3, 0, 6, 1): 5,
    Path(3, 0, 7, 0): 3800,
    Path(3, 0, 7, 1): 5000,
    Path(3, 0, 8, 0): 125,
    Path(3, 0, 8, 1): 900,
    Path(3, 0, 9): 100,
    Path(3, 0, 10): 15,
    Path(3, 0, 11, 0): 0,
    Path(3, 0, 13): 1367491215,
    Path(3, 0, 14): "+02:00",
    Path(3, 0, 16): "U",
}

# The spec's multiple object instance example: Read /2 (Access Control, two instances,
# ACL resource 2 with resource instances 127 and 310, the latter a 16-bit identifier).
ACCESS_CONTROL_TLV = h(
    """
    08 00 0E  C1 00 01  C1 01 00  83 02 41 7F 07  C1 03 7F
    08 02 12  C1 00 03  C1 01 00  87 02 41 7F 07 61 01 36 01  C1 03 7F
    """
)

ACCESS_CONTROL_VALUES: dict[Path, Value] = {
    Path(2, 0, 0): b"\x01",
    Path(2, 0, 1): b"\x00",
    Path(2, 0, 2, 127): b"\x07",
    Path(2, 0, 3): b"\x7f",
    Path(2, 2, 0): b"\x03",
    Path(2, 2, 1): b"\x00",
    Path(2, 2, 2, 127): b"\x07",
    Path(2, 2, 2, 310): b"\x01",
    Path(2, 2, 3): b"\x7f",
}

# LwM2M 1.0 JSON (section 6.4.4) for the same Read /3/0.
DEVICE_LWM2M_JSON = b"""{"bn":"/3/0/",
 "e":[
 {"n":"0","sv":"Open Mobile Alliance"},
 {"n":"1","sv":"Lightweight M2M Client"},
 {"n":"2","sv":"345000123"},
 {"n":"3","sv":"1.0"},
 {"n":"6/0","v":1},
 {"n":"6/1","v":5},
 {"n":"7/0","v":3800},
 {"n":"7/1","v":5000},
 {"n":"8/0","v":125},
 {"n":"8/1","v":900},
 {"n":"9","v":100},
 {"n":"10","v":15},
 {"n":"11/0","v":0},
 {"n":"13","v":1367491215},
 {"n":"14","sv":"+02:00"},
 {"n":"16","sv":"U"}]
}"""

# LwM2M 1.1 Transport (section 7.4.4) SenML JSON for the same Read /3/0, compact form.
DEVICE_SENML_JSON = (
    b'[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},'
    b'{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},'
    b'{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},'
    b'{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},'
    b'{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},'
    b'{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]'
)
