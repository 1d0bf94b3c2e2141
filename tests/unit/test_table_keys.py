"""The staging table's keys have one owner, adapters/table.py (issue 19, point 5).

A key is a stored format: items written by one version are read by the next, so a key
shape that changes strands what was staged under the old one. Each shape is pinned here
as docs/architecture.md lists it, and no other runtime module spells a key's prefix."""

from __future__ import annotations

import re

from qomon_sync.adapters import table
from tests.conftest import ROOT

PACKAGE = ROOT / "functions" / "qomon_sync"


def pair(key: table.Key) -> tuple[str, str]:
    assert set(key) == {"pk", "sk"}
    return key["pk"]["S"], key["sk"]["S"]


def test_every_key_shape_is_the_one_the_architecture_page_lists() -> None:
    seq = "7".rjust(40, "0")
    assert pair(table.staged_event_key("id:700103", seq)) == ("group#id:700103", f"event#{seq}")
    assert pair(table.group_head_key("mail:h:ab12")) == ("group#mail:h:ab12", "head")
    assert pair(table.bucket_key("a1b2")) == ("space#a1b2", "bucket")
    assert pair(table.forms_key("a1b2")) == ("space#a1b2", "forms")
    assert pair(table.forms_lease_key("a1b2")) == ("space#a1b2", "forms-lease")
    assert pair(table.waiting_lookups_key("a1b2")) == ("space#a1b2", "mail-lookups")
    assert pair(table.remembered_contact_key("h:ab12")) == ("mail#h:ab12", "contact")
    assert pair(table.contact_lease_key("a1b2", 700103)) == ("contact#a1b2#700103", "lease")
    assert pair(table.pause_key("c3d4")) == ("space#c3d4", "pause")
    assert pair(table.health_key("c3d4")) == ("space#c3d4", "health")
    assert table.group_partition("id:700103") == {"S": "group#id:700103"}
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for pk, sk in (
        ("group#<message group>", "event#<SQS sequence number, 40 digits>"),
        ("group#<message group>", "head"),
        ("space#<hash of the API key>", "bucket"),
        ("space#<hash of the API key>", "forms"),
        ("space#<hash of the API key>", "mail-lookups"),
        ("mail#<keyed pseudonym of the e-mail>", "contact"),
        ("contact#<hash of the API key>#<Qomon id>", "lease"),
        ("space#<hash of the space's URL>", "pause"),
        ("space#<hash of the space's URL>", "health"),
    ):
        assert f"| `{pk}` | `{sk}`" in architecture


def test_a_group_is_read_back_from_its_partition_key() -> None:
    assert table.group_of_partition(pair(table.group_head_key("id:700103"))[0]) == "id:700103"
    assert table.group_of_partition(pair(table.pause_key("c3d4"))[0]) is None


def test_a_staged_event_is_told_from_the_head_by_its_sort_key() -> None:
    seq = "12".rjust(40, "0")
    assert table.event_seq(pair(table.staged_event_key("id:1", seq))[1]) == seq
    assert table.event_seq(table.HEAD) is None


def test_no_other_runtime_module_spells_a_key_prefix() -> None:
    prefix = re.compile(r"""["'](group|space|mail|contact)#""")
    spelled = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "table.py" and prefix.search(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []
