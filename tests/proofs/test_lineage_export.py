"""Lineage export: the graph `queries.lineage` returns for records made by the storage contract
becomes PROV-JSON that `prov` reads back identically, and an SVG with one box per record."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import prov
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_node.api import queries
from ledger_node.contracts import storage
from ledger_node.lineage_export import LineageError, prov_json, to_prov, to_svg
from ledger_node.state import MemoryState, TxContext, encode_value

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"


def _create(state: MemoryState, height: int, rid: str, doc: dict, inputs: list[str]) -> None:
    ctx = TxContext(state, "ab" * 32, f"{height:064x}", None)
    storage.create(ctx, rid, doc, storage.check_inputs(ctx, inputs))
    state.apply({k.encode(): encode_value(v, height, 0, 1_700_000_000_000 + height) for k, v in ctx.writes.items()})


@pytest.fixture
def averaged() -> dict:
    """The seed paper's derivation: three readings dp1..dp3 averaged into dp4, dp4 converted to °C."""
    state = MemoryState()
    for i in (1, 2, 3):
        doc = {
            "kind": "reading",
            "dp": f"dp{i}",
            "device": "dev-042",
            "gateway": "gw-1",
            "ts_ms": 1_700_000_000_000,
            "values": {"temp": 39_000 + i},
        }
        _create(state, i, f"dev-042@1#{i}", doc, [])
    _create(state, 4, "dp4#1", {"kind": "record", "dp": "dp4", "creator": "ab" * 32, "values": {"avg_f": 39_002}},
            [f"dev-042@1#{i}" for i in (1, 2, 3)])  # fmt: skip
    _create(
        state, 5, "dp4#2", {"kind": "record", "dp": "dp4", "creator": "ab" * 32, "values": {"avg_c": 3_890}}, ["dp4#1"]
    )
    return queries.lineage(state, "dp4#2", "backward", depth=10, max_nodes=100, late_ms=60_000)


def test_prov_json_round_trips_and_says_what_derived_from_what(averaged, tmp_path) -> None:
    path = tmp_path / "lineage.json"
    path.write_text(prov_json(averaged))
    doc = prov.read(str(path), format="json")
    assert doc == to_prov(averaged)
    records = {r for r in doc.get_records() if r.get_type().localpart == "Entity" and "record/" in str(r.identifier)}
    assert len(records) == 5
    derived = [r for r in doc.get_records() if r.get_type().localpart == "Derivation"]
    assert len(derived) == 4 == len(averaged["edges"])
    kinds = {r.get_type().localpart for r in doc.get_records()}
    assert {"Usage", "Generation", "Attribution", "Association", "Specialization", "Agent"} <= kinds
    agents = {str(r.identifier) for r in doc.get_records() if r.get_type().localpart == "Agent"}
    assert {"edgeprov:device/dev-042", "edgeprov:principal/" + "ab" * 32} == agents


def test_svg_has_a_box_per_record_and_an_arrow_per_edge(averaged) -> None:
    svg = ET.fromstring(to_svg(averaged))
    assert len(svg.findall(f"{SVG}g/{SVG}rect")) == 5
    assert len(svg.findall(f"{SVG}line")) == 4
    titles = {t.text for t in svg.iter(f"{SVG}title")}
    assert titles == {"dev-042@1#1", "dev-042@1#2", "dev-042@1#3", "dp4#1", "dp4#2"}


def test_missing_and_truncated_graphs_still_export() -> None:
    graph = {"root": "a", "nodes": {"a": {"kind": "reading", "dp": "x", "gateway": "gw-9"}, "b": {"missing": True}},
             "edges": [["a", "b"]], "truncated": True}  # fmt: skip
    assert "truncated" in to_svg(graph)
    text = prov_json(graph)
    assert '"edgeprov:missing": true' in text and "edgeprov:gateway/gw-9" in text


@pytest.mark.parametrize(
    "graph",
    [None, [], {"nodes": {}}, {"nodes": {"a": 1}, "edges": []}, {"root": "a", "nodes": {"a": {}}, "edges": [["a", "z"]]},
     {"root": "q", "nodes": {"a": {}}, "edges": []}],
)  # fmt: skip
def test_malformed_graph_is_a_clear_error(graph) -> None:
    with pytest.raises(LineageError):
        to_svg(graph)
    with pytest.raises(LineageError):
        prov_json(graph)


ids = st.text(st.sampled_from("abc@#/%<&.-_1"), min_size=1, max_size=8)


@given(
    st.dictionaries(
        ids,
        st.fixed_dictionaries(
            {},
            optional={
                "kind": st.text(max_size=5),
                "dp": ids,
                "device": ids,
                "values": st.dictionaries(ids, st.integers()),
            },
        ),
        min_size=1,
        max_size=6,
    ),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_any_well_formed_graph_exports_and_round_trips(nodes, data) -> None:  # fmt: skip
    names = sorted(nodes)
    edges = data.draw(st.lists(st.lists(st.sampled_from(names), min_size=2, max_size=2), max_size=8))
    graph = {"root": names[0], "nodes": nodes, "edges": edges}
    ET.fromstring(to_svg(graph))
    prov_json(graph)
