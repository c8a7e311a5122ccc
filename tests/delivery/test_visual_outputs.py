"""The steps' pictures reach the KFP and Vertex UIs: in the committed compiled YAML, optimize and evaluate
have HTML output artifacts (``system.HTML``, which both UIs render), written by the library's pages
(tagifai/figures.py) in the code each executor runs."""

import pytest
import yaml
from loopback import COMPILED

#: component -> its visual outputs and their schema titles
VISUAL = {
    "comp-optimize": {"plots": "system.HTML", "profile": "system.HTML"},
    "comp-evaluate": {"plots": "system.HTML", "report": "system.Markdown"},
}
#: the library function each component's body calls to draw its pages
DRAWN_BY = {"comp-optimize": ("optimization_page", "profile_page"), "comp-evaluate": ("evaluation_page",)}


def _spec(target: str, pipeline: str) -> dict:
    return next(yaml.safe_load_all((COMPILED / target / f"{pipeline}.yaml").read_text()))


@pytest.mark.parametrize("pipeline", ["continual", "mlops", "sensor"])
@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_optimize_and_evaluate_have_html_outputs(target, pipeline):
    spec = _spec(target, pipeline)
    for component, outputs in VISUAL.items():
        artifacts = spec["components"][component]["outputDefinitions"]["artifacts"]
        found = {name: artifacts[name]["artifactType"]["schemaTitle"] for name in outputs if name in artifacts}
        assert found == outputs, f"{target}/{pipeline}.yaml {component}: {found}"


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_the_executors_draw_the_pages_with_the_library(target):
    spec = _spec(target, "continual")
    executors = spec["deploymentSpec"]["executors"]
    for component, functions in DRAWN_BY.items():
        container = executors[spec["components"][component]["executorLabel"]]["container"]
        code = "\n".join(container.get("command", []) + container.get("args", []))
        assert "from tagifai.figures import" in code
        for function in functions:
            assert f"{function}(" in code, f"{target}: {component} does not call {function}"
