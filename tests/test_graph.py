"""The workflow document: validation messages, run order, cache keys and workflow files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.errors import WorkflowError
from studio.graph import serialize
from studio.graph.document import Exposed, Graph, Link, Node
from studio.graph.keys import cache_key, graph_keys
from studio.graph.order import topological_order
from studio.graph.spec import (
    CONDITIONING,
    ENUM,
    FLOAT,
    IMAGE,
    INT,
    LATENT,
    MASK,
    MODEL,
    PATH,
    SEED,
    STRING,
    TEXT,
    NodeSpec,
    Param,
    Port,
)
from studio.graph.validate import GraphInvalid, GraphProblem, check, effective_params, validate

ROOT = Path(__file__).resolve().parent.parent

SPECS = {
    spec.type: spec
    for spec in (
        NodeSpec(
            "LoadCheckpoint",
            "Load checkpoint",
            outputs=(Port("model", MODEL),),
            params=(Param("checkpoint", PATH, ""),),
        ),
        NodeSpec(
            "EncodePrompt",
            "Encode prompt",
            inputs=(Port("model", MODEL),),
            outputs=(Port("conditioning", CONDITIONING),),
            params=(Param("text", TEXT, ""),),
        ),
        NodeSpec(
            "EmptyLatent",
            "Empty latent",
            outputs=(Port("latent", LATENT),),
            params=(
                Param("width", INT, 512, minimum=64, maximum=4096),
                Param("height", INT, 512, minimum=64, maximum=4096),
            ),
        ),
        NodeSpec(
            "Sample",
            "Sample",
            inputs=(
                Port("model", MODEL),
                Port("positive", CONDITIONING),
                Port("negative", CONDITIONING, optional=True),
                Port("latent", LATENT),
                Port("mask", MASK, optional=True),
            ),
            outputs=(Port("latent", LATENT),),
            params=(
                Param("seed", SEED, 0),
                Param("steps", INT, 20, minimum=1, maximum=150),
                Param("guidance", FLOAT, 7.0, minimum=0.0, maximum=30.0),
                Param("sampler", ENUM, "Euler", choices=("Euler", "DDIM")),
            ),
        ),
        NodeSpec(
            "Decode",
            "Decode",
            inputs=(Port("model", MODEL), Port("latent", LATENT)),
            outputs=(Port("image", IMAGE),),
        ),
        NodeSpec(
            "SaveImage",
            "Save image",
            inputs=(Port("image", IMAGE),),
            params=(Param("prefix", STRING, "studio"),),
            output_node=True,
        ),
        NodeSpec("PreviewImage", "Preview image", inputs=(Port("image", IMAGE),), output_node=True),
    )
}


def text_to_image() -> Graph:
    graph = Graph(name="Text to image")
    graph.add(Node("n1", "LoadCheckpoint", {"checkpoint": "model.safetensors"}, (0, 0)))
    graph.add(Node("n2", "EncodePrompt", {"text": "a cat"}, (200, 0), "Prompt"))
    graph.add(Node("n3", "EncodePrompt", {"text": "blurry"}, (200, 100), "Negative"))
    graph.add(Node("n4", "EmptyLatent", {"width": 768}, (200, 200)))
    graph.add(Node("n5", "Sample", {"seed": 42, "steps": 20}, (400, 0)))
    graph.add(Node("n6", "Decode", {}, (600, 0)))
    graph.add(Node("n7", "SaveImage", {}, (800, 0)))
    graph.connect("n1", "model", "n2", "model")
    graph.connect("n1", "model", "n3", "model")
    graph.connect("n1", "model", "n5", "model")
    graph.connect("n2", "conditioning", "n5", "positive")
    graph.connect("n3", "conditioning", "n5", "negative")
    graph.connect("n4", "latent", "n5", "latent")
    graph.connect("n1", "model", "n6", "model")
    graph.connect("n5", "latent", "n6", "latent")
    graph.connect("n6", "image", "n7", "image")
    graph.expose("n2", "text", "Prompt")
    graph.expose("n5", "seed")
    return graph


def messages(graph: Graph) -> list[str]:
    return [p.message for p in validate(graph, SPECS)]


# -- validation ----------------------------------------------------------------------------


def test_a_complete_workflow_has_no_problems():
    assert validate(text_to_image(), SPECS) == []
    check(text_to_image(), SPECS)


def test_unknown_node_type():
    graph = text_to_image()
    graph.add(Node("n8", "Teleport", {"x": 1}))
    graph.connect("n6", "image", "n8", "image")
    # Reported once; its ports and parameters cannot be checked without a spec.
    assert messages(graph) == ['Node "Teleport" (n8) has an unknown type "Teleport".']


def test_missing_input_names_node_by_title_and_id():
    graph = text_to_image()
    graph.nodes["n5"].title = "Sample"
    graph.disconnect("n5", "positive")
    assert validate(graph, SPECS) == [
        GraphProblem("n5", "positive", 'Node "Sample" (n5): input "positive" is not connected.')
    ]


def test_optional_inputs_may_be_empty():
    graph = text_to_image()
    graph.remove("n3")
    assert validate(graph, SPECS) == []


def test_spec_title_names_an_untitled_node():
    graph = text_to_image()
    graph.disconnect("n6", "latent")
    assert messages(graph) == ['Node "Decode" (n6): input "latent" is not connected.']


def test_links_to_and_from_missing_nodes():
    graph = text_to_image()
    graph.links.append(Link("n9", "latent", "n6", "latent"))
    graph.links.append(Link("n1", "model", "n10", "model"))
    graph.links.append(Link("x", "a", "y", "b"))
    assert messages(graph) == [
        'Node "Decode" (n6): input "latent" is linked from node "n9", which is not in the workflow.',
        'Node "Load checkpoint" (n1): output "model" is linked to node "n10", which is not in the workflow.',
        'A link joins nodes "x" and "y", which are not in the workflow.',
        'Node "Decode" (n6): input "latent" is linked from 2 outputs; it takes one.',
    ]


def test_unknown_port_names():
    graph = text_to_image()
    graph.connect("n1", "vae", "n6", "model")
    graph.connect("n6", "image", "n7", "picture")
    assert messages(graph) == [
        'Node "Load checkpoint" (n1) has no output "vae" (it is linked to node "Decode" (n6)).',
        'Node "Save image" (n7) has no input "picture" (it is linked from node "Decode" (n6)).',
    ]


def test_type_mismatch_names_both_types():
    graph = text_to_image()
    graph.connect("n4", "latent", "n5", "positive")
    problems = validate(graph, SPECS)
    assert problems == [
        GraphProblem(
            "n5",
            "positive",
            'Node "Sample" (n5): input "positive" takes CONDITIONING but is linked to output '
            '"latent" of node "Empty latent" (n4), which gives LATENT.',
        )
    ]


def test_input_fed_by_two_links():
    graph = text_to_image()
    graph.links.append(Link("n3", "conditioning", "n5", "positive"))
    assert messages(graph) == [
        'Node "Sample" (n5): input "positive" is linked from 2 outputs; it takes one.'
    ]


def test_cycle_names_its_nodes():
    graph = text_to_image()
    graph.add(Node("n8", "EncodePrompt", {}, title="Loop A"))
    graph.add(Node("n9", "Decode", {}, title="Loop B"))
    graph.add(Node("n10", "Sample", {}, title="Loop C"))
    graph.connect("n10", "latent", "n9", "latent")
    graph.connect("n1", "model", "n9", "model")
    graph.connect("n1", "model", "n8", "model")
    graph.connect("n8", "conditioning", "n10", "positive")
    graph.connect("n1", "model", "n10", "model")
    # Type-correct everywhere but one link, so the cycle is the interesting problem.
    graph.links.append(Link("n9", "image", "n10", "latent"))
    problems = validate(graph, SPECS)
    assert [p.message for p in problems][-1] == (
        'Nodes "Loop B" (n9) and "Loop C" (n10) form a cycle; a node cannot depend on its own output.'
    )
    assert problems[-1].node_id == "n9"


def test_node_linked_to_itself():
    graph = text_to_image()
    graph.connect("n5", "latent", "n5", "latent")
    assert messages(graph) == ['Node "Sample" (n5) is linked to itself, which forms a cycle.']


def test_parameter_problems():
    graph = text_to_image()
    graph.set_param("n5", "steps", 0)
    graph.set_param("n5", "guidance", "high")
    graph.set_param("n5", "sampler", "Heun")
    graph.set_param("n5", "seed", -1)
    graph.set_param("n5", "colour", "blue")
    graph.set_param("n4", "height", 8000)
    graph.set_param("n4", "width", 512.0)
    problems = validate(graph, SPECS)
    assert [(p.node_id, p.port_or_param) for p in problems] == [
        ("n4", "width"),
        ("n4", "height"),
        ("n5", "seed"),
        ("n5", "steps"),
        ("n5", "guidance"),
        ("n5", "sampler"),
        ("n5", "colour"),
    ]
    assert [p.message for p in problems] == [
        'Node "Empty latent" (n4): parameter "width" must be a whole number, not 512.0.',
        'Node "Empty latent" (n4): parameter "height" must be at most 4096, not 8000.',
        'Node "Sample" (n5): parameter "seed" must be at least 0, not -1.',
        'Node "Sample" (n5): parameter "steps" must be at least 1, not 0.',
        'Node "Sample" (n5): parameter "guidance" must be a number, not \'high\'.',
        'Node "Sample" (n5): parameter "sampler" must be one of Euler, DDIM, not \'Heun\'.',
        'Node "Sample" (n5) has no parameter "colour".',
    ]


def test_missing_params_take_defaults():
    graph = text_to_image()
    node = graph.nodes["n5"]
    assert effective_params(node, SPECS["Sample"]) == {
        "seed": 42,
        "steps": 20,
        "guidance": 7.0,
        "sampler": "Euler",
    }
    assert validate(graph, SPECS) == []


def test_exposed_entries_must_exist():
    graph = text_to_image()
    graph.exposed.append(Exposed("n99", "seed"))
    graph.exposed.append(Exposed("n5", "temperature"))
    assert messages(graph) == [
        'The prompt panel shows parameter "seed" of node "n99", which is not in the workflow.',
        'Node "Sample" (n5): the prompt panel shows parameter "temperature", which this node does not have.',
    ]


def test_no_output_node():
    graph = text_to_image()
    graph.remove("n7")
    assert messages(graph) == ["The workflow has no output node (Save image or Preview image)."]
    assert messages(Graph()) == ["The workflow has no output node (Save image or Preview image)."]


def test_check_raises_the_first_problem_and_carries_all():
    graph = text_to_image()
    graph.disconnect("n5", "positive")
    graph.remove("n7")
    with pytest.raises(WorkflowError) as caught:
        check(graph, SPECS)
    assert isinstance(caught.value, GraphInvalid)
    assert str(caught.value) == 'Node "Sample" (n5): input "positive" is not connected.'
    assert [p.message for p in caught.value.problems] == [
        'Node "Sample" (n5): input "positive" is not connected.',
        "The workflow has no output node (Save image or Preview image).",
    ]


# -- order ---------------------------------------------------------------------------------


def test_order_puts_dependencies_first_and_breaks_ties_by_insertion():
    assert topological_order(text_to_image()) == ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]
    graph = Graph()
    for node_id in ("c", "b", "a"):
        graph.add(Node(node_id, "X"))
    graph.connect("a", "out", "c", "in")
    assert topological_order(graph) == ["b", "a", "c"]


def test_order_restricted_to_targets():
    graph = text_to_image()
    graph.add(Node("n8", "PreviewImage"))
    graph.add(Node("n9", "EmptyLatent"))  # feeds nothing
    graph.connect("n6", "image", "n8", "image")
    assert topological_order(graph, ["n8"]) == ["n1", "n2", "n3", "n4", "n5", "n6", "n8"]
    assert topological_order(graph, ["n2", "n4"]) == ["n1", "n2", "n4"]
    assert topological_order(graph, []) == []
    with pytest.raises(WorkflowError, match=r'^Node "n42" is not in the workflow\.$'):
        topological_order(graph, ["n42"])


def test_order_refuses_a_cycle_naming_its_nodes():
    graph = text_to_image()
    graph.nodes["n6"].title = "Decode"
    graph.links.append(Link("n6", "image", "n5", "latent"))
    message = 'Nodes "Sample" (n5) and "Decode" (n6) form a cycle; a node cannot depend on its own output.'
    with pytest.raises(WorkflowError) as caught:
        topological_order(graph)
    assert str(caught.value) == message
    # A cycle outside the targets' ancestors does not matter.
    assert topological_order(graph, ["n2"]) == ["n1", "n2"]


# -- cache keys ----------------------------------------------------------------------------

# Computed once; a change here means every cache key kept anywhere is invalidated.
KNOWN_KEY = "708a563163215deb21be24c80b36e8c5f2c4902dca7a3e0f09bd42348f458b39"


def keys_of(graph: Graph) -> dict[str, str]:
    return graph_keys(graph, SPECS, topological_order(graph))


def test_cache_key_is_canonical():
    key = cache_key("Sample", {"steps": 20, "seed": 1, "size": (512, 512)}, {"model": "abc:model"})
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key(
        "Sample", {"size": [512, 512], "seed": 1, "steps": 20}, {"model": "abc:model"}
    )
    assert key != cache_key(
        "Sample", {"steps": 20, "seed": 2, "size": [512, 512]}, {"model": "abc:model"}
    )
    assert key != cache_key(
        "Sample", {"steps": 20, "seed": 1, "size": [512, 512]}, {"model": "abd:model"}
    )
    assert key != cache_key(
        "Sample", {"steps": 20, "seed": 1, "size": [512, 512]}, {"latent": "abc:model"}
    )
    assert key != cache_key(
        "Sampler", {"steps": 20, "seed": 1, "size": [512, 512]}, {"model": "abc:model"}
    )
    assert cache_key("X", {"g": 0.1}, {}) != cache_key("X", {"g": 0.1 + 1e-16 * 2}, {})


def test_cache_key_is_stable_across_processes():
    key = cache_key(
        "Sample", {"seed": 42, "guidance": 7.5, "text": "a cat ☕"}, {"model": "k:model"}
    )
    code = (
        "from studio.graph.keys import cache_key;"
        "print(cache_key('Sample', {'text': 'a cat \\u2615', 'guidance': 7.5, 'seed': 42},"
        " {'model': 'k:model'}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == key == KNOWN_KEY


def test_seed_change_reruns_the_sampler_and_what_follows_only():
    before = keys_of(text_to_image())
    graph = text_to_image()
    graph.set_param("n5", "seed", 43)
    after = keys_of(graph)
    assert [n for n in before if before[n] != after[n]] == ["n5", "n6", "n7"]


def test_defaults_written_out_change_nothing():
    graph = text_to_image()
    graph.set_param("n5", "guidance", 7.0)
    graph.set_param("n5", "sampler", "Euler")
    assert keys_of(graph) == keys_of(text_to_image())


def test_ids_positions_and_titles_do_not_affect_keys():
    before = keys_of(text_to_image())
    graph = text_to_image()
    for node in graph.nodes.values():
        node.position = (node.position[0] + 50, node.position[1] - 10)
        node.title = f"Renamed {node.id}"
    assert keys_of(graph) == before

    # The same workflow with other ids gives the same keys node for node.
    renamed = Graph()
    new_ids = {old: f"x{old}" for old in graph.nodes}
    for old, node in text_to_image().nodes.items():
        renamed.add(Node(new_ids[old], node.type, dict(node.params)))
    for link in text_to_image().links:
        renamed.connect(new_ids[link.src], link.src_port, new_ids[link.dst], link.dst_port)
    assert {new_ids[n]: k for n, k in before.items()} == keys_of(renamed)


def test_which_output_feeds_an_input_matters():
    graph = Graph()
    graph.add(Node("a", "LoadCheckpoint"))
    two = NodeSpec("Two", "Two", outputs=(Port("left", IMAGE), Port("right", IMAGE)))
    specs = {**SPECS, "Two": two}
    graph.add(Node("t", "Two"))
    graph.add(Node("s", "SaveImage"))
    graph.connect("t", "left", "s", "image")
    left = graph_keys(graph, specs, topological_order(graph))
    graph.connect("t", "right", "s", "image")
    right = graph_keys(graph, specs, topological_order(graph))
    assert left["t"] == right["t"] and left["s"] != right["s"]


# -- workflow files ------------------------------------------------------------------------


def test_round_trip_is_exact():
    graph = text_to_image()
    graph.set_param("n5", "guidance", 7.25)
    graph.nodes["n2"].params["text"] = 'a cat ☕ "quoted"\nsecond line'
    data = serialize.to_dict(graph)
    assert data["format"] == "studio-workflow" and data["version"] == 1
    assert data["links"][0] == ["n1", "model", "n2", "model"]
    assert data["exposed"][0] == {"node": "n2", "param": "text", "label": "Prompt"}
    assert data["nodes"][1] == {
        "id": "n2",
        "type": "EncodePrompt",
        "title": "Prompt",
        "position": [200.0, 0.0],
        "params": {"text": 'a cat ☕ "quoted"\nsecond line'},
    }
    assert serialize.from_dict(data) == graph
    assert list(serialize.from_dict(data).nodes) == list(graph.nodes)
    text = serialize.dumps(graph)
    assert serialize.loads(text) == graph
    assert serialize.dumps(serialize.loads(text)) == text
    assert json.loads(text) == data


def test_dumps_is_stable_whatever_the_param_order():
    one, two = text_to_image(), text_to_image()
    two.nodes["n5"].params = {"steps": 20, "seed": 42}
    assert serialize.dumps(one) == serialize.dumps(two)
    assert '\n  "format": "studio-workflow",\n  "version": 1,' in serialize.dumps(one)


def test_to_dict_does_not_share_state_with_the_graph():
    graph = text_to_image()
    graph.nodes["n5"].params["extra"] = {"list": [1, 2]}
    data = serialize.to_dict(graph)
    data["nodes"][4]["params"]["extra"]["list"].append(3)
    assert graph.nodes["n5"].params["extra"] == {"list": [1, 2]}


def test_migrations_run_in_order(monkeypatch):
    def from_0(data):
        # Version 0 called links "edges" and stored them as objects.
        data["links"] = [[e["from"], e["out"], e["to"], e["in"]] for e in data.pop("edges")]
        return data

    monkeypatch.setitem(serialize.MIGRATIONS, 0, from_0)
    old = {
        "format": "studio-workflow",
        "version": 0,
        "nodes": [{"id": "a", "type": "LoadCheckpoint"}, {"id": "b", "type": "EncodePrompt"}],
        "edges": [{"from": "a", "out": "model", "to": "b", "in": "model"}],
    }
    graph = serialize.from_dict(old)
    assert graph.links == [Link("a", "model", "b", "model")]
    assert graph.nodes["a"] == Node("a", "LoadCheckpoint")
    assert "edges" in old  # the caller's data is left alone


def test_old_version_without_migration_is_refused():
    old = {"format": "studio-workflow", "version": 0, "nodes": []}
    with pytest.raises(
        WorkflowError,
        match=r"^The workflow is in workflow version 0, which this Studio cannot upgrade\.$",
    ):
        serialize.from_dict(old)


def test_newer_version_is_refused(tmp_path):
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"format": "studio-workflow", "version": 3, "nodes": []}))
    with pytest.raises(WorkflowError) as caught:
        serialize.load(path)
    assert str(caught.value) == (
        f'The workflow file "{path}" was saved by a newer Studio (workflow version 3); '
        "this one reads up to 1."
    )


@pytest.mark.parametrize(
    "data",
    [
        {"1": {"class_type": "KSampler", "inputs": {"seed": 1}}},
        {"last_node_id": 9, "last_link_id": 9, "nodes": [], "links": [], "version": 0.4},
        {"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1, "fixed"]}]},
    ],
    ids=["api", "editor", "editor-nodes"],
)
def test_comfyui_file_is_refused_with_a_hint(tmp_path, data):
    path = tmp_path / "comfy.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WorkflowError) as caught:
        serialize.load(path)
    assert str(caught.value) == (
        f'The workflow file "{path}" is a ComfyUI workflow, not a Studio one; '
        "import it instead of opening it."
    )


@pytest.mark.parametrize(
    ("text", "ending"),
    [
        (
            "{not json",
            "is not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes).",
        ),
        ("[1, 2]", "is not a Studio workflow."),
        ('{"hello": "world"}', "is not a Studio workflow."),
        ('{"format": "studio-workflow"}', "is damaged: it has no version number."),
        ('{"format": "studio-workflow", "version": 1}', 'is damaged: the workflow has no "nodes".'),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [3]}',
            "is damaged: node 1 is not an object.",
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [{"id": "a"}]}',
            'is damaged: node 1 has no "type".',
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [{"id": "a", "type": "X", "params": []}]}',
            'is damaged: node 1 has a "params" that is not an object.',
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [{"id": "a", "type": "X", "position": [1]}]}',
            'is damaged: node 1 has a "position" that is not two numbers.',
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [{"id": "a", "type": "X"}, {"id": "a", "type": "Y"}]}',
            'is damaged: node id "a" is used twice.',
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [], "links": [["a", "b", "c"]]}',
            "is damaged: link 1 is not four names (node, output, node, input).",
        ),
        (
            '{"format": "studio-workflow", "version": 1, "nodes": [], "exposed": [{"node": "a"}]}',
            'is damaged: prompt panel entry 1 has no "param".',
        ),
    ],
)
def test_bad_files_name_the_file(tmp_path, text, ending):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(WorkflowError) as caught:
        serialize.load(path)
    assert str(caught.value) == f'The workflow file "{path}" {ending}'


def test_bad_data_without_a_file():
    with pytest.raises(WorkflowError, match=r"^The workflow is not a Studio workflow\.$"):
        serialize.loads('"text"')


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.json"
    with pytest.raises(WorkflowError, match=r"cannot be read: No such file or directory\.$"):
        serialize.load(path)


def test_save_and_load(tmp_path):
    path = tmp_path / "workflow.json"
    graph = text_to_image()
    serialize.save(graph, path)
    assert serialize.load(path) == graph
    assert path.read_text(encoding="utf-8") == serialize.dumps(graph) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "workflow.json"
    serialize.save(text_to_image(), path)
    original = path.read_bytes()
    changed = text_to_image()
    changed.set_param("n5", "seed", 7)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialize.os, "replace", fail)
    with pytest.raises(WorkflowError) as caught:
        serialize.save(changed, path)
    assert (
        str(caught.value) == f'The workflow file "{path}" cannot be saved: No space left on device.'
    )
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.json"]


def test_graph_package_is_stdlib_only():
    code = (
        "import sys, studio.graph.validate, studio.graph.order, studio.graph.keys,"
        " studio.graph.serialize;"
        "bad = {'torch', 'PIL', 'numpy', 'PySide6'} & set(sys.modules);"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
