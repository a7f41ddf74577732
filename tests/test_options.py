"""Each option is declared once, in its callable's signature (alimb.options): the YAML files choose, they never
restate; the composed config, the schema and the listing all follow from the declaration."""

import inspect
import typing
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from alimb.errors import UserError
from alimb.declarations import Node, declared, declared_by_model, fill, model, target_callable
from alimb.options import Doc
from alimb.run import CONFIG_DIR
from alimb.schema import AL, FILE_MODELS, Features, validate

GROUPS = ["dataset", "imbalance", "acquisition", "scheme", "backbone", "logger", "oracle"]
USER_DATA = {"dataset/embeddings", "dataset/image_folder", "dataset/image_list", "dataset/images"}  # the user names the files
YAML_FILES = sorted(Path(CONFIG_DIR).rglob("*.yaml"))


def _targets(node, path=""):
    """(path, node) of every dict with a `_target_` of ours, nested ones included."""
    if isinstance(node, dict):
        if str(node.get("_target_", "")).startswith("alimb."):
            yield path, node
        for key, value in node.items():
            yield from _targets(value, f"{path}.{key}" if path else key)


def _composed():
    """(where, node) of every target node of every option, as composed."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for group in GROUPS:
            for option in sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml")):
                raw = OmegaConf.to_container(compose("config", overrides=[f"{group}={option}"])[group], resolve=False)
                yield from ((f"{group}/{option}:{p}", n) for p, n in _targets(raw, group))


COMPOSED = list(_composed())
TARGETS = sorted({node["_target_"] for _, node in COMPOSED})


@pytest.mark.parametrize("where,node", COMPOSED, ids=[w for w, _ in COMPOSED])
def test_every_composed_node_holds_its_options_exactly(where, node):
    """Every key a node sets is a declared option, every declared option is in the node (so any overrides without
    `+`), and every required one has a value, except the files a user's own dataset must name."""
    options = declared(target_callable(node["_target_"]))
    keys = set(node) - {"_target_", "_partial_", "name"}
    assert keys == set(options), f"{where}: keys {sorted(keys ^ set(options))} differ from the declaration"
    unset = [k for k, v in node.items() if v == "???"]
    assert not unset or where.split(":")[0] in USER_DATA, f"{where}: {unset} required but not set"


@pytest.mark.parametrize("target", TARGETS)
def test_every_option_is_declared_with_a_type_and_one_line_of_doc(target):
    fn = target_callable(target)
    options = declared(fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for o in options.values():
        assert typing.get_origin(o.annotation) is typing.Annotated, f"{target}.{o.name} has no annotation with a Doc"
        assert o.doc and "\n" not in o.doc, f"{target}.{o.name}: no one-line Doc"
    assert model(target) is not None and set(model(target).model_fields) >= set(options)
    assert {p.name for p in params} - set(options) <= {"ctx"}  # only an AF's Context is not an option


def _same(declared_default, value):
    return type(value) is type(declared_default) and value == declared_default or \
        (isinstance(value, (int, float)) and not isinstance(value, bool) and type(declared_default) in (int, float)
         and value == declared_default)


def _restated(node: dict, options: dict, path: str) -> list[str]:
    return [f"{path}.{name}".strip(".") for name, o in options.items()
            if name in node and (node[name] == "???" if o.required else _same(o.default, node[name]))]


def _model_nodes(data: dict, model, path=""):
    """(path, node, model) of a file of a node that builds nothing, and of its sub-nodes a model types."""
    yield path, data, model
    for name, o in declared_by_model(model).items():
        if isinstance(o.annotation, type) and issubclass(o.annotation, Node) and isinstance(data.get(name), dict):
            yield from _model_nodes(data[name], o.annotation, f"{path}.{name}")


@pytest.mark.parametrize("file", YAML_FILES, ids=lambda f: str(f.relative_to(CONFIG_DIR)))
def test_no_yaml_file_restates_a_declared_default(file):
    """A file sets an option only to choose another value: a default (or `???` for a required option) written
    again is a second declaration, which could drift from the first. Targets' options come from their signatures;
    config.yaml's, dataset/'s and trainer/'s from alimb.schema's models."""
    data = yaml.safe_load(file.read_text()) or {}
    restated = [r for path, node in _targets(data) for r in _restated(node, declared(target_callable(node["_target_"])), path)]
    relative = file.relative_to(CONFIG_DIR)
    model = FILE_MODELS.get(relative.parent.as_posix() if relative.parent.name else relative.stem)
    if model is not None:
        restated += [r for path, node, m in _model_nodes(data, model) for r in _restated(node, declared_by_model(m), path)]
    assert not restated, f"{file.name} restates {restated}"


@pytest.mark.parametrize("model", sorted({m for m in FILE_MODELS.values()} | {Features, AL}, key=lambda m: m.__name__))
def test_every_key_of_the_nodes_that_build_nothing_is_declared_with_a_doc(model):
    for o in declared_by_model(model).values():
        if not (isinstance(o.annotation, type) and issubclass(o.annotation, Node)):
            assert o.doc and "\n" not in o.doc, f"{model.__name__}.{o.name}: no one-line Doc"


def test_the_restatement_check_can_fail(tmp_path):
    """The check above on a file written to restate: it finds exactly the restated keys."""
    node = {"_target_": "alimb.schemes.svm.LinearSVMScheme", "C": 1.0, "tol": 1e-5, "warm_start": True,
            "max_iter": 2000.0, "class_weight": "balanced"}
    # by hand: C (1.0) and warm_start (true) restate LinearSVMScheme's defaults, max_iter 2000.0 is its default 2000
    # as a float (the same number), tol and class_weight choose other values
    assert _restated(node, declared(target_callable(node["_target_"])), "scheme") == [
        "scheme.C", "scheme.max_iter", "scheme.warm_start"]


def test_an_option_left_out_of_its_yaml_overrides_without_plus_and_is_checked(make_cfg):
    """coreset.yaml does not mention `lazy`: the declaration puts it in the composed config, with its default."""
    assert "lazy" not in yaml.safe_load((Path(CONFIG_DIR) / "acquisition" / "coreset.yaml").read_text())
    cfg = make_cfg("acquisition=coreset", "acquisition.lazy=false")
    assert cfg.acquisition.lazy is False and make_cfg("acquisition=coreset").acquisition.lazy is True
    validate(cfg)
    with pytest.raises(UserError, match=r"^config key acquisition.lazy='no' is invalid"):
        validate(make_cfg("acquisition=coreset", "acquisition.lazy=no"))


def test_a_key_no_signature_declares_is_refused_in_one_line(make_cfg):
    """The drift the old hand-written schema let through: cifar100's loader takes no on_bad_image."""
    with pytest.raises(UserError, match=r"^unknown config key dataset.loader.on_bad_image; remove it"):
        validate(make_cfg("dataset=cifar100", "+dataset.loader.on_bad_image=fail"))


def test_fill_adds_defaults_and_never_replaces_what_is_set_or_composed():
    node = OmegaConf.create({"a": {"_target_": "alimb.schemes.svm.LinearSVMScheme", "C": 2.0},
                             "b": {"_target_": "alimb.acquisition.minority.minority_sampling"},
                             "c": {"_target_": "my.own.Thing"}})
    fill(node)
    assert node.a.C == 2.0 and node.a.tol == 3e-6 and node.a.class_weight is None
    assert OmegaConf.is_missing(node.b, "within") and set(node.c) == {"_target_"}
    composed = OmegaConf.merge({"within": {"_target_": "x"}}, node.b)  # a defaults list composed it first
    assert composed.within == {"_target_": "x"}


def test_the_listing_shows_each_option_with_its_doc(capsys):
    from alimb.options_cli import main

    assert main(["acquisition=coreset"]) == 0
    out = capsys.readouterr().out
    # the doc as written in coreset's signature in kcenter.py, read here from the source's syntax tree
    import ast

    tree = ast.parse((Path(__file__).resolve().parent.parent / "alimb/acquisition/kcenter.py").read_text())
    coreset = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "coreset")
    lazy = next(a for a in coreset.args.kwonlyargs if a.arg == "lazy")
    written = next(ast.literal_eval(c.args[0]) for c in ast.walk(lazy.annotation)
                   if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "Doc")
    assert f"  lazy: bool = True  # {written}" in out.splitlines()


def test_a_run_stored_without_a_declared_default_is_the_same_run(make_cfg):
    """A run directory written before an option was declared (or by a YAML that left it out) resumes: identity
    compares configs with every declared default filled in; a different value is still a different run."""
    import copy

    from alimb.identity import identity, resolved

    new = resolved(make_cfg("acquisition=coreset"))
    old = copy.deepcopy(new)
    del old["acquisition"]["lazy"], old["features"], old["scheme"]["tol"]
    assert identity(old) == identity(new)
    old["acquisition"]["lazy"] = False
    assert identity(old) != identity(new)


def test_the_listing_names_what_each_part_is_even_without_options(capsys):
    """PCB's base and the bandit's arms: the listing says which AF each is (conf/acquisition/pcb.yaml's defaults
    choose entropy; minority_bandit.yaml's arms are random, margin, coreset and dmcs_rand), options or not."""
    from alimb.options_cli import main

    assert main(["acquisition=pcb"]) == 0
    out = capsys.readouterr().out
    assert "  base: acquisition = entropy  #" in out
    assert "acquisition.base (alimb.acquisition.uncertainty.entropy):\n  (no options)\n" in out
    assert main(["acquisition=minority_bandit"]) == 0
    out = capsys.readouterr().out
    assert "  arms: {name: acquisition} = random, margin, coreset, dmcs_rand  #" in out
    assert "acquisition.arms.margin (alimb.acquisition.uncertainty.margin):\n  (no options)\n" in out
