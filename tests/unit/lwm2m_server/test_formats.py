"""Content-format preferences by LwM2M version, and the dedup cache's bounds."""

from __future__ import annotations

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from aiocoap.transports.udp6 import UDP6EndpointAddress

from reconciler.lwm2m.codecs import ContentFormat as CF
from reconciler.lwm2m.formats import links_under, read_formats, write_formats
from reconciler.lwm2m.hardening import DedupCache
from reconciler.model.lwm2m import Path


def test_a_1_0_device_is_asked_for_tlv_and_1_1_for_senml_first():
    assert read_formats("1.0") == (CF.TLV, None)
    assert read_formats("1.1") == (CF.SENML_CBOR, CF.SENML_JSON, CF.TLV, None)


def test_the_format_a_1_2_root_link_announces_comes_first():
    assert read_formats("1.2", CF.SENML_JSON)[0] == CF.SENML_JSON
    assert read_formats("1.2", 99999) == read_formats("1.2")


def test_a_single_opaque_resource_is_written_as_opaque_and_text_is_a_last_resort():
    assert write_formats("1.1", Path(5, 0, 0), {Path(5, 0, 0): b"\x00"})[0] == CF.OPAQUE
    assert write_formats("1.0", Path(5, 0, 1), {Path(5, 0, 1): "u"}) == (CF.TLV, CF.TEXT)
    assert CF.TEXT not in write_formats("1.0", Path(5, 0), {Path(5, 0, 1): "u"})


def test_links_under_a_path_keep_only_that_subtree():
    assert links_under(("/1/0", "/5", "/5/0", "/50/0"), Path(5)) == ["/5", "/5/0"]


class _Interface:
    """Stands in for the udp6 interface a remote refers to (held only weakly)."""


def _request(mid: int, interface: _Interface) -> Message:
    remote = UDP6EndpointAddress(("::ffff:127.0.0.1", 5000, 0, 0), interface)
    raw = Message(_mtype=Type.CON, _mid=mid, code=Code.POST, uri_path=("rd",)).encode()
    return Message.decode(raw, remote)


def test_the_dedup_cache_remembers_recent_messages_and_stays_bounded():
    interface = _Interface()
    cache = DedupCache(udp=None, span=3600, cap=10)

    assert [cache.deduplicate(_request(m, interface)) for m in range(25)] == [False] * 25
    assert len(cache) <= 20
    assert cache.deduplicate(_request(24, interface)) is True
    assert cache.deduplicate(_request(0, interface)) is False  # long forgotten


def test_the_dedup_cache_empties_after_two_idle_generations():
    interface = _Interface()
    cache = DedupCache(udp=None, span=0.0, cap=10)
    cache.deduplicate(_request(1, interface))

    cache.tick()
    cache.tick()

    assert len(cache) == 0
